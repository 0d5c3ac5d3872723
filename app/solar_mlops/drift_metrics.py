"""A drift verdict's figures, pushed to the Prometheus Pushgateway.

``drift`` and ``monitoring`` compute; this module publishes. The monitor_drift flow
pushes each run's result, in the job ``solar_mlops_drift``, where the alert rules and
dashboards read it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from solar_mlops.drift import DriftResult
from solar_mlops.monitoring import ServedCoverage

JOB = "solar_mlops_drift"


def push(
    result: DriftResult,
    gateway: str,
    model_version: str,
    coverage: Sequence[ServedCoverage] = (),
    job: str = JOB,
) -> None:
    """Push the run's figures to a Prometheus Pushgateway (``host:port`` or URL): the
    verdict on ``model_version``, and the served intervals' ``coverage`` of each
    version that served the days read.

    NaN stands for "not enough data": Prometheus keeps it, and alert rules skip it.
    """
    registry = CollectorRegistry()
    labels = ["model_version"]
    gauges: dict[str, Gauge] = {}

    def gauge(
        name: str,
        doc: str,
        value: float,
        extra: dict[str, str] | None = None,
        version: str = model_version,
    ) -> None:
        names = labels + sorted(extra or {})
        metric = gauges.get(name) or Gauge(name, doc, names, registry=registry)
        gauges[name] = metric
        metric.labels(model_version=version, **(extra or {})).set(value)

    gauge(
        "solar_drift_data_drift",
        "1 when any ratio drifted from the training years",
        result.data_drift,
    )
    gauge(
        "solar_drift_performance_drift",
        "1 when the window's error broke its promise",
        result.performance_drift,
    )
    gauge("solar_drift_nrmse", "nRMSE of the window's daytime rows with actuals", result.nrmse)
    gauge(
        "solar_drift_peak_ratio",
        "measured over forecast power where the forecast is high",
        result.peak_ratio,
    )
    gauge(
        "solar_drift_surplus_ratio",
        "measured over forecast power where the forecast is at least moderate",
        result.surplus_ratio,
    )
    gauge(
        "solar_drift_clipped_rows",
        "rows at the window's highest measured power while the forecast is above it",
        result.clipped_rows,
    )
    gauge(
        "solar_drift_time_offset_minutes",
        "minutes the weather's stamps are off from the power meter's (0: aligned)",
        result.time_offset_min,
    )
    gauge(
        "solar_drift_data_fault",
        "1 when the likely cause is a data fault (irradiance sensor, clock): not retrained on",
        result.diagnosis.data_fault,
    )
    gauge(
        "solar_drift_cause",
        "the likely cause of the window's alarms (value 1; cause none: no alarm)",
        1,
        {"cause": str(result.diagnosis.cause)},
    )
    for kind, rows in (
        ("day", result.day_rows),
        ("night", result.night_rows),
        ("actuals", result.actual_rows),
    ):
        gauge("solar_drift_rows", "rows in the window", rows, {"kind": kind})
    for feature, score in result.scores.items():
        gauge(
            "solar_drift_feature_score",
            "Evidently drift score per ratio",
            score,
            {"feature": feature},
        )
    for served in coverage:
        gauge(
            "solar_interval_coverage",
            "share of measured power inside the served interval (outermost quantiles)",
            served.observed,
            version=served.model_version,
        )
        gauge(
            "solar_interval_coverage_nominal",
            "the share the served interval promises (its levels' difference)",
            served.nominal,
            version=served.model_version,
        )
        gauge(
            "solar_interval_coverage_rows",
            "daylight rows with actuals behind solar_interval_coverage",
            served.rows,
            version=served.model_version,
        )
    gauge(
        "solar_drift_last_run_timestamp_seconds",
        "when the monitor last ran",
        time.time(),
    )
    push_to_gateway(gateway, job=job, registry=registry, timeout=10)

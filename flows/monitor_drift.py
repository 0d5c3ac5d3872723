"""monitor_drift: judge the last days of live traffic against the champion's training
years, publish the figures, and raise an event when it drifted: ``solar.drift.detected``
(which starts retrain) when the likely cause is the plant or the weather,
``solar.data.fault`` (which starts nothing) when it is the inputs: a sensor or a clock
is repaired at the plant, and retraining on its readings would teach the model the
fault."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from flows.common import DATA_FAULT_EVENT, DRIFT_EVENT, announce, champion, open_registry
from flows.settings import FlowSettings
from solar_mlops import drift, drift_metrics, monitoring, prediction_store
from solar_mlops.registry import Registry

DATA_FAULT_NOTE = (
    "a data fault: no retraining starts, and retrain leaves this window out of training; "
    "repair the input at the plant"
)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def latest_prediction(engine: Engine) -> datetime | None:
    return prediction_store.latest_prediction_time(engine)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def read_window(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return prediction_store.recent_window(engine, start, end)


@task(timeout_seconds=600, cache_policy=NO_CACHE)
def judge(
    registry: Registry, version: str, recent: pd.DataFrame, before: pd.DataFrame
) -> drift.DriftResult:
    return monitoring.judge(registry, version, recent, get_run_logger().info, before)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def keep_report(
    registry: Registry, version: str, result: drift.DriftResult, event: str | None
) -> str:
    return monitoring.record(registry, version, result, event)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def last_announcement(registry: Registry, data_fault: bool) -> monitoring.Announcement | None:
    return monitoring.last_announcement(registry, data_fault)


@task(timeout_seconds=600, cache_policy=NO_CACHE)
def served_coverage(registry: Registry, rows: pd.DataFrame) -> list[monitoring.ServedCoverage]:
    return monitoring.served_coverage(registry, rows)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def push(
    result: drift.DriftResult,
    gateway: str,
    version: str,
    coverage: list[monitoring.ServedCoverage],
) -> None:
    drift_metrics.push(result, gateway, model_version=version, coverage=coverage)


def summary(
    result: drift.DriftResult,
    reason: str,
    version: str,
    versions: list[str],
    report: str,
    coverage: list[monitoring.ServedCoverage],
) -> str:
    """The run's artifact: the verdict, the figures, the served intervals' coverage,
    and where the full report is."""
    thresholds = drift.DriftConfig().thresholds
    rows = "\n".join(
        f"| {name} | {score:.3f} | {thresholds[name]} | "
        f"{'drift' if name in result.drifted else ''} |"
        for name, score in result.scores.items()
    )
    verdict = "drift" if result.drift else "no drift"
    covered = "\n".join(
        f"| v{c.model_version} | {c.observed:.1%} | {c.nominal:.0%} | {c.rows} |" for c in coverage
    )
    return f"""# {verdict}: {result.window_start} .. {result.window_end}

Champion v{version} (traffic served by v{", v".join(versions)}).

**Reason:** {reason}

**Likely cause:** {result.diagnosis.cause}: {result.diagnosis.evidence}

| ratio | score | threshold | |
| --- | --- | --- | --- |
{rows}

Rows: {result.day_rows} daytime, {result.night_rows} night, {result.actual_rows} with actuals.
nRMSE {result.nrmse:.2%}, peak ratio {result.peak_ratio:.2f}.

Served intervals over the days read (nan: fewer than {monitoring.MIN_COVERAGE_ROWS} rows):

| version | measured inside | nominal | daylight rows with actuals |
| --- | --- | --- | --- |
{covered}

Evidently report: [{report}]({report})
"""


@flow(name="monitor_drift", timeout_seconds=1200)
def monitor_drift(
    end: datetime | None = None, days: int = 7, cooldown_days: float = 7
) -> dict[str, object]:
    """Judge the ``days`` before ``end`` (default: the newest prediction in the store,
    since replayed traffic carries the data's own times) against the champion. Drift
    raises ``solar.data.fault`` when its likely cause is the inputs, else
    ``solar.drift.detected``, unless the same kind was announced for a window ending less
    than ``cooldown_days`` earlier (0: every time)."""
    logger = get_run_logger()
    settings = FlowSettings()
    settings.require("mlflow_tracking_uri", "prediction_store_url", "pushgateway_url")
    registry = open_registry(settings)
    engine = prediction_store.connect(settings.prediction_store_url)
    if end is None:
        latest = latest_prediction(engine)
        if latest is None:
            logger.warning("the prediction store holds no predictions yet: nothing to judge")
            return {"drift": False, "reason": "no predictions yet", "event": None}
        end = latest + timedelta(seconds=1)  # the window's end is exclusive
    start = end - timedelta(days=days)
    # The days before the window too: they show whether a loss came at once or slowly.
    shaped = timedelta(days=max(days, drift.DriftConfig().shape_days))
    rows: pd.DataFrame = read_window(engine, end - shaped, end)
    recent, before = rows[rows.index >= start], rows[rows.index < start]
    if recent.empty:
        raise drift.DriftInputError(f"the prediction store has no predictions in [{start}, {end})")
    version = champion(registry)
    result = judge(registry, version, recent, before)
    logger.info("window %s .. %s: %s", result.window_start, result.window_end, result.reason)
    event, reason = None, result.reason
    if result.drift:
        data_fault = result.diagnosis.data_fault
        name = DATA_FAULT_EVENT if data_fault else DRIFT_EVENT
        previous = last_announcement(registry, data_fault)
        if monitoring.cooling_down(previous, result, timedelta(days=cooldown_days)):
            assert previous is not None  # cooling down means there was one
            reason += (
                f"; already announced (event {previous.event_id}, window to "
                f"{previous.window_end}): no new {name} within {cooldown_days:g} days"
            )
            logger.warning("%s", reason)
        else:
            event = announce(registry, name, version, event_payload(result))
        if data_fault:
            reason += f"; {DATA_FAULT_NOTE}"
    report = keep_report(registry, version, result, event)
    versions = sorted(recent["model_version"].unique())
    # Over every day read: a week of one version is too short a sample for coverage.
    coverage = served_coverage(registry, rows)
    create_markdown_artifact(
        markdown=summary(result, reason, version, versions, report, coverage),
        key="solar-drift",
        description=f"{'drift' if result.drift else 'no drift'} on the week to {result.window_end}",
    )
    push(result, settings.pushgateway_url, version, coverage)
    return {
        "drift": result.drift,
        "cause": str(result.diagnosis.cause),
        "data_fault": result.diagnosis.data_fault,
        "reason": reason,
        "report": report,
        "event": event,
    }


def event_payload(result: drift.DriftResult) -> dict[str, object]:
    """What retrain and an operator need to know about the drifted window."""
    return {
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "reasons": result.reason,
        "drifted": result.drifted,
        "data_drift": result.data_drift,
        "performance_drift": result.performance_drift,
        "scores": result.scores,
        # JSON has no NaN; None says "not enough data".
        "nrmse": result.nrmse if math.isfinite(result.nrmse) else None,
        "peak_ratio": result.peak_ratio if math.isfinite(result.peak_ratio) else None,
        "time_offset_min": (
            result.time_offset_min if math.isfinite(result.time_offset_min) else None
        ),
        "cause": str(result.diagnosis.cause),
        "evidence": result.diagnosis.evidence,
        "data_fault": result.diagnosis.data_fault,
    }

"""Prometheus metrics, correct across gunicorn workers (multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is imported for the values
to be shared; the gunicorn config does that. Without it (tests, a single process) the
default registry is used.
"""

from __future__ import annotations

import os

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter(
    "solar_http_requests_total", "HTTP requests by endpoint, method and status",
    ["endpoint", "method", "status"],
)  # fmt: skip
LATENCY = Histogram(
    "solar_http_request_duration_seconds", "HTTP request latency by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)  # fmt: skip
PREDICTED_POWER = Histogram(
    "solar_predicted_power_watts", "Predicted AC power per row",
    buckets=(0, 1, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 3000, 3500),
)  # fmt: skip
PREDICTION_ROWS = Counter("solar_prediction_rows_total", "Rows predicted")
MODEL_INFO = Gauge(
    "solar_model_info", "The model this service answers with (value 1)",
    ["model_name", "model_version", "run_id", "source", "colour"],
    multiprocess_mode="livemax",
)  # fmt: skip
LOG_QUEUE_ROWS = Gauge(
    "solar_prediction_log_queue_rows", "Prediction rows waiting to be written",
    multiprocess_mode="livesum",
)  # fmt: skip
LOG_WRITTEN = Counter("solar_prediction_log_written_rows_total", "Prediction rows stored")
LOG_WRITE_FAILURES = Counter(
    "solar_prediction_log_write_failures_total", "Failed attempts to write a batch to the store"
)
LOG_DROPPED = Counter(
    "solar_prediction_log_dropped_rows_total",
    "Prediction rows dropped: queue full, or the store kept failing",
)


# Up to this many values, observing each (two writes apiece) costs less than the
# numpy set-up of the bulk path: one-row requests are the common case.
_FEW = 3


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe`` for a whole batch: one write per bucket, not per row.

    prometheus_client has no bulk observe, and in multiprocess mode each observation
    costs a lock and a pid check; a 1000-row batch would spend milliseconds here. This
    mirrors ``Histogram.observe``: non-cumulative internal buckets, first bound that
    holds the value (``le``), then the sum.
    """
    if values.size <= _FEW:
        for value in values.tolist():
            histogram.observe(value)
        return
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=False):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))


def render() -> tuple[bytes, str]:
    """The exposition text for every worker, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

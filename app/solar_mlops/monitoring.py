"""What a monitoring run does around ``drift.monitor``, with a registered version.

- ``judge``: the version's training years as the reference and its promised nRMSE, from
  the registry, then the verdict on the recent window.
- ``record``: each verdict kept in MLflow, one run per judged window in the
  ``solar-drift`` experiment (the Evidently report, the scores, the event it raised).
- ``last_announcement`` and ``cooling_down``: was drift announced lately? A sensor fault
  does not go away when a model is retrained, so without a cool-down every scheduled run
  would start another retraining.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from solar_mlops import drift
from solar_mlops.data import TimeWindow, load_dataset
from solar_mlops.drift import DriftResult
from solar_mlops.predictor import PowerModel
from solar_mlops.registry import Registry

EXPERIMENT = "solar-drift"
# Runs searched for the last announcement: a cool-down spans a handful of daily runs.
SEARCH_DEPTH = 100


@dataclass(frozen=True)
class Announcement:
    """A drift event raised for one window."""

    event_id: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    model_version: str


def judge(
    registry: Registry,
    version: str,
    recent: pd.DataFrame,
    progress: Callable[[str], None] = lambda _: None,
    before: pd.DataFrame | None = None,
) -> DriftResult:
    """``recent`` (shaped like ``prediction_store.recent_window``, as is ``before``, the
    days before it) against a registered version: its training window and promise come
    from the registry."""
    loaded = registry.load(version)
    trained_on, _ = registry.data_windows(version)
    promised, source = registry.promised_nrmse(version)
    progress(f"v{version} trained on {trained_on} promises {promised:.2%} nRMSE ({source})")
    return judge_model(loaded.model, trained_on, promised, recent, before)


def judge_model(
    model: PowerModel,
    trained_on: TimeWindow,
    promised_nrmse: float,
    recent: pd.DataFrame,
    before: pd.DataFrame | None = None,
) -> DriftResult:
    """``recent`` against ``model``: the dataset over ``trained_on`` as the reference,
    ``promised_nrmse`` as the performance bar; ``before`` (optional) shapes a loss."""
    dataset = load_dataset(model.site)
    reference = drift.training_reference(
        dataset[trained_on.mask(pd.DatetimeIndex(dataset.index))], model
    )
    columns = list(drift.COLUMNS)
    return drift.monitor(
        recent[columns],
        reference,
        promised_nrmse,
        site=model.site,
        before=None if before is None else before[columns],
    )


def _experiment_id(registry: Registry) -> str:
    client = registry.client
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)


def record(
    registry: Registry, version: str, result: DriftResult, event_id: str | None = None
) -> str:
    """Log one verdict as a run (report, scores, window, event); return its UI address."""
    client = registry.client
    experiment_id = _experiment_id(registry)
    tags = {
        "model_version": version,
        "drift": str(result.drift),
        "reason": result.reason,
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "cause": str(result.diagnosis.cause),
        "data_fault": str(result.diagnosis.data_fault),
    }
    if event_id is not None:
        tags["event_id"] = event_id
    run = client.create_run(
        experiment_id,
        run_name=f"{result.window_start:%Y-%m-%d}..{result.window_end:%Y-%m-%d}",
        tags=tags,
    )
    figures = {
        **result.scores,
        "nrmse": result.nrmse,
        "peak_ratio": result.peak_ratio,
        "surplus_ratio": result.surplus_ratio,
        "clipped_rows": float(result.clipped_rows),
        "time_offset_min": result.time_offset_min,
    }
    for name, value in figures.items():
        if math.isfinite(value):  # NaN: not enough data for that figure
            client.log_metric(run.info.run_id, name, value)
    client.log_text(run.info.run_id, result.report_html, "evidently-report.html")
    client.set_terminated(run.info.run_id)
    base = registry.tracking_uri.rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run.info.run_id}"


def last_announcement(registry: Registry) -> Announcement | None:
    """The drift event raised for the latest window, whichever model served it."""
    experiment = registry.client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = registry.client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.drift = 'True'",
        max_results=SEARCH_DEPTH,
        order_by=["start_time DESC"],
    )
    announced = [
        Announcement(
            event_id=run.data.tags["event_id"],
            window_start=pd.Timestamp(run.data.tags["window_start"]),
            window_end=pd.Timestamp(run.data.tags["window_end"]),
            model_version=run.data.tags["model_version"],
        )
        for run in runs
        if "event_id" in run.data.tags
    ]
    return max(announced, key=lambda a: a.window_end, default=None)


def cooling_down(previous: Announcement | None, result: DriftResult, cooldown: timedelta) -> bool:
    """Whether drift in ``result`` falls within ``cooldown`` of the last announcement,
    measured in traffic time (window ends), so replayed traffic behaves like live."""
    if previous is None or cooldown <= timedelta(0):
        return False
    return pd.Timestamp(result.window_end) - previous.window_end < cooldown

"""What a monitoring run does around ``drift.monitor``, with a registered version.

- ``judge``: the version's training years as the reference and its promised nRMSE, from
  the registry, then the verdict on the recent window.
- ``record``: each verdict kept in MLflow, one run per judged window in the
  ``solar-drift`` experiment (the Evidently report, the scores, the event it raised).
- ``last_announcement`` and ``cooling_down``: was drift (or a data fault) announced
  lately? A fault does not go away when a model is retrained, so without a cool-down
  every scheduled run would announce it again.
- ``data_fault_windows``: the windows whose inputs were found faulty, which retraining
  leaves out.
- ``served_coverage`` and ``interval_coverage``: how often the measured power fell
  inside the interval each version served, once actuals have arrived (online
  calibration).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from mlflow.entities import Run

from solar_mlops import drift
from solar_mlops.data import TimeWindow, load_dataset
from solar_mlops.drift import DriftResult
from solar_mlops.features import FeatureBuilder
from solar_mlops.predictor import PowerModel
from solar_mlops.probabilistic import coverage
from solar_mlops.registry import Registry
from solar_mlops.site import Site

EXPERIMENT = "solar-drift"
# Rows with actuals a version needs before its coverage is judged: about ten days of
# daylight on the 30-minute grid. Fewer: NaN, "not enough data".
MIN_COVERAGE_ROWS = 200
# Runs searched for the last announcement: a cool-down spans a handful of daily runs.
SEARCH_DEPTH = 100


@dataclass(frozen=True)
class Announcement:
    """A drift event raised for one window."""

    event_id: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    model_version: str


@dataclass(frozen=True)
class ServedCoverage:
    """How often the measured power fell inside the interval a version served, between
    its outermost quantiles, and how often it should (their levels' difference)."""

    model_version: str
    rows: int
    observed: float  # NaN: fewer than MIN_COVERAGE_ROWS daylight rows with actuals
    nominal: float


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


def served_coverage(
    registry: Registry, rows: pd.DataFrame, min_rows: int = MIN_COVERAGE_ROWS
) -> list[ServedCoverage]:
    """Each version's coverage on the rows it served that have actuals (``rows`` shaped
    like ``prediction_store.recent_window``); versions without quantiles are left out."""
    found = []
    for version, served in rows.dropna(subset=["measured_w"]).groupby("model_version"):
        model = registry.load(str(version)).model
        if model.intervals is not None:
            found.append(interval_coverage(model, str(version), served, min_rows))
    return found


def interval_coverage(
    model: PowerModel, version: str, served: pd.DataFrame, min_rows: int = MIN_COVERAGE_ROWS
) -> ServedCoverage:
    """How often ``served``'s measured power fell inside ``model``'s interval, on its
    daylight rows with actuals. The intervals are computed again from the logged
    weather and forecast: the features are row-wise and serving computes them the same
    way, so these are the intervals the clients got."""
    assert model.intervals is not None, "a model without quantiles serves no interval"
    served = served.dropna(subset=["measured_w"])
    features = FeatureBuilder(model.site).build(served[["ghi", "temp_air"]])
    daylight = (features["solar_elevation"] > 0).to_numpy()
    quantiles = model.quantiles(features, served["predicted_w"].to_numpy())[daylight]
    measured = served["measured_w"].to_numpy()[daylight]
    levels = model.intervals.levels
    enough = len(measured) >= min_rows
    return ServedCoverage(
        model_version=version,
        rows=len(measured),
        observed=coverage(measured, quantiles[:, 0], quantiles[:, -1]) if enough else np.nan,
        nominal=levels[-1] - levels[0],
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


def _drift_runs(registry: Registry, data_fault: bool) -> list[Run]:
    """The newest verdicts that found drift, of a data fault or of the other causes."""
    experiment = registry.client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = registry.client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.drift = 'True'",
        max_results=SEARCH_DEPTH,
        order_by=["start_time DESC"],
    )
    # Verdicts kept before the diagnosis have no data_fault tag: they were drift.
    return [r for r in runs if r.data.tags.get("data_fault", "False") == str(data_fault)]


def last_announcement(registry: Registry, data_fault: bool = False) -> Announcement | None:
    """The event raised for the latest drifted window, whichever model served it: a
    drift event (``data_fault`` False), or a data-fault event."""
    announced = [
        Announcement(
            event_id=run.data.tags["event_id"],
            window_start=pd.Timestamp(run.data.tags["window_start"]),
            window_end=pd.Timestamp(run.data.tags["window_end"]),
            model_version=run.data.tags["model_version"],
        )
        for run in _drift_runs(registry, data_fault)
        if "event_id" in run.data.tags
    ]
    return max(announced, key=lambda a: a.window_end, default=None)


def data_fault_windows(registry: Registry, site: Site) -> tuple[TimeWindow, ...]:
    """The site's calendar days of every window found with faulty inputs, announced or
    not, oldest first: what training must not learn from."""
    windows = {
        TimeWindow(
            f"{pd.Timestamp(run.data.tags['window_start']).tz_convert(site.timezone):%Y-%m-%d}",
            f"{pd.Timestamp(run.data.tags['window_end']).tz_convert(site.timezone):%Y-%m-%d}",
        )
        for run in _drift_runs(registry, data_fault=True)
    }
    return tuple(sorted(windows, key=lambda w: (w.start, w.end)))


def cooling_down(previous: Announcement | None, result: DriftResult, cooldown: timedelta) -> bool:
    """Whether drift in ``result`` falls within ``cooldown`` of the last announcement,
    measured in traffic time (window ends), so replayed traffic behaves like live."""
    if previous is None or cooldown <= timedelta(0):
        return False
    return pd.Timestamp(result.window_end) - previous.window_end < cooldown

"""Drift verdicts kept in MLflow, the cool-down that keeps one lasting fault from
starting a retraining every day, and the data faults kept apart from drift: announced
separately, and the windows training leaves out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_drift import LOW_GHI, store_rows

from solar_mlops import monitoring
from solar_mlops.data import TimeWindow
from solar_mlops.diagnosis import Cause, Diagnosis
from solar_mlops.drift import DriftResult
from solar_mlops.features import FeatureBuilder
from solar_mlops.pipeline import TrainOutcome
from solar_mlops.registry import Registry
from solar_mlops.site import Site
from solar_mlops.training import Prepared

WEEK = pd.Timedelta(days=7)


def verdict(window_end: str, drifted: bool, cause: Cause = Cause.NONE) -> DriftResult:
    end = pd.Timestamp(window_end, tz="UTC")
    return DriftResult(
        window_start=end - WEEK,
        window_end=end,
        day_rows=180,
        night_rows=156,
        actual_rows=170,
        scores={"measured_to_physical": 1.2 if drifted else 0.3},
        drifted=["measured_to_physical"] if drifted else [],
        data_drift=drifted,
        nrmse=float("nan"),  # not enough actuals: kept out of MLflow's metrics
        peak_ratio=1.0,
        performance_drift=False,
        reason="measured_to_physical drifted" if drifted else "no drift",
        report_html="<html>report</html>",
        diagnosis=Diagnosis(cause, "the evidence"),
    )


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    # Artifacts in the test's folder, not ./mlruns of the working directory.
    registry.client.create_experiment(
        monitoring.EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    return registry


def test_a_verdict_is_kept_with_its_report_scores_and_event(registry: Registry) -> None:
    url = monitoring.record(registry, "3", verdict("2013-10-08", True), "event-1")

    run_id = url.rsplit("/", 1)[-1]
    run = registry.client.get_run(run_id)
    assert run.data.tags["model_version"] == "3" and run.data.tags["event_id"] == "event-1"
    assert run.data.metrics == {
        "measured_to_physical": 1.2, "peak_ratio": 1.0, "clipped_rows": 0.0
    }  # fmt: skip
    report = registry.client.download_artifacts(run_id, "evidently-report.html")
    assert Path(report).read_text() == "<html>report</html>"


def test_the_last_announcement_is_the_latest_window_that_raised_an_event(
    registry: Registry,
) -> None:
    assert monitoring.last_announcement(registry) is None
    monitoring.record(registry, "3", verdict("2013-10-08", False))
    assert monitoring.last_announcement(registry) is None  # no drift, no event

    monitoring.record(registry, "3", verdict("2013-10-15", True), "event-1")
    monitoring.record(registry, "4", verdict("2013-10-22", True), "event-2")
    monitoring.record(registry, "4", verdict("2013-10-23", True))  # cooling down

    last = monitoring.last_announcement(registry)
    assert last is not None
    assert (last.event_id, last.model_version) == ("event-2", "4")
    assert last.window_end == pd.Timestamp("2013-10-22", tz="UTC")
    assert last.window_start == last.window_end - WEEK


def test_drift_cools_down_in_traffic_time_across_model_versions(registry: Registry) -> None:
    monitoring.record(registry, "3", verdict("2013-10-08", True), "event-1")
    last = monitoring.last_announcement(registry)
    week = timedelta(days=7)

    # A retrained champion does not reset it: a sensor fault outlives the model.
    assert monitoring.cooling_down(last, verdict("2013-10-14", True), week)
    assert not monitoring.cooling_down(last, verdict("2013-10-15", True), week)
    assert not monitoring.cooling_down(last, verdict("2013-10-09", True), timedelta(0))
    assert not monitoring.cooling_down(None, verdict("2013-10-09", True), week)


def test_data_faults_are_announced_apart_and_their_windows_left_out_of_training(
    registry: Registry,
) -> None:
    sensor = Cause.IRRADIANCE_SENSOR
    monitoring.record(registry, "3", verdict("2013-10-08 06:30", True, sensor), "fault-1")
    monitoring.record(registry, "3", verdict("2013-10-09 06:30", True, sensor))  # cooling down
    monitoring.record(
        registry, "3", verdict("2013-10-15 06:30", True, Cause.PLANT_LOSS_STEP), "drift-1"
    )
    monitoring.record(registry, "3", verdict("2013-06-11 06:30", True, Cause.TIME_MISALIGNMENT))

    drift = monitoring.last_announcement(registry)
    fault = monitoring.last_announcement(registry, data_fault=True)
    assert drift is not None and drift.event_id == "drift-1"
    assert fault is not None and fault.event_id == "fault-1"
    # Every window found faulty, announced or not, in the site's calendar days (UTC-7).
    assert monitoring.data_fault_windows(registry, Site()) == (
        TimeWindow("2013-06-03", "2013-06-10"),
        TimeWindow("2013-09-30", "2013-10-07"),
        TimeWindow("2013-10-01", "2013-10-08"),
    )


def test_served_coverage_is_the_served_intervals_share_per_version(
    embedded_registry: tuple[str, TrainOutcome], prepared: Prepared
) -> None:
    uri, outcome = embedded_registry
    registry, model = Registry(tracking_uri=uri), outcome.result.model
    builder = FeatureBuilder(prepared.site)
    weeks = TimeWindow("2013-09-10", "2013-10-07")
    clean = store_rows(prepared, model, builder, weeks).assign(model_version="1")
    low = store_rows(prepared, model, builder, weeks, LOW_GHI).assign(model_version="1")

    (served,) = monitoring.served_coverage(registry, clean)
    assert served.model_version == "1" and served.nominal == pytest.approx(0.8)
    assert served.rows > monitoring.MIN_COVERAGE_ROWS
    # The clean weeks sit near nominal; the intervals around a forecast from a sensor
    # reading 20 % low miss the plant far more often.
    assert abs(served.observed - served.nominal) < 0.1
    (missed,) = monitoring.served_coverage(registry, low)
    assert missed.observed < served.observed - 0.15
    # The same intervals as in-process quantiles, row for row: what the service served.
    daylight = clean[builder.build(clean[["ghi", "temp_air"]])["solar_elevation"] > 0]
    measured = daylight.dropna(subset=["measured_w"])
    bands = model.quantiles(
        builder.build(measured[["ghi", "temp_air"]]), measured["predicted_w"].to_numpy()
    )
    inside = (measured["measured_w"] >= bands[:, 0]) & (measured["measured_w"] <= bands[:, -1])
    assert served.observed == pytest.approx(inside.mean())
    # Too few actuals: no figure, not an alarm; versions without actuals are left out.
    few = clean.assign(measured_w=clean["measured_w"].where(clean.index < clean.index[150]))
    (thin,) = monitoring.served_coverage(registry, few)
    assert thin.rows < monitoring.MIN_COVERAGE_ROWS and np.isnan(thin.observed)
    assert monitoring.served_coverage(registry, clean.assign(measured_w=np.nan)) == []

"""Drift verdicts kept in MLflow, and the cool-down that keeps one lasting fault from
starting a retraining every day."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from solar_mlops import monitoring
from solar_mlops.drift import DriftResult
from solar_mlops.registry import Registry

WEEK = pd.Timedelta(days=7)


def verdict(window_end: str, drifted: bool) -> DriftResult:
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

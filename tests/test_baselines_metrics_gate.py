"""Baselines, metrics and the gate's rule: small, exact cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame

from solar_mlops import metrics
from solar_mlops.baselines import PVWattsBaseline, smart_persistence
from solar_mlops.features import FeatureBuilder
from solar_mlops.gate import Coverage, decide

CALIBRATED = Coverage(0.8, 0.8)


def test_pvwatts_fit_recovers_the_plant_scale() -> None:
    feats = FeatureBuilder().build(weather_frame(periods=96))
    power = 2500.0 * feats["pvwatts_ac_pu"]
    fitted = PVWattsBaseline.fit(feats, power)
    assert fitted.scale_w == pytest.approx(2500.0)
    assert np.allclose(fitted.predict(feats), power)


def test_smart_persistence_is_perfect_on_repeating_days() -> None:
    feats = FeatureBuilder().build(weather_frame(start="2013-06-20", periods=96))
    power = 0.8 * 3000 * feats["poa_global_clear"] / 1000
    forecast = smart_persistence(feats, power, capacity_w=3000)
    second_day = forecast.index >= pd.Timestamp("2013-06-21", tz="Etc/GMT+7")
    assert forecast[~second_day].isna().all(), "no yesterday, no forecast"
    # The clear-sky shape moves a little in a day: a close, not exact, match.
    daylight = second_day & (power > 100)
    assert np.allclose(forecast[daylight], power[daylight], rtol=0.02)


def test_metrics_on_known_errors() -> None:
    measured = pd.Series([0.0, 100.0, 200.0, 300.0])
    predicted = measured + pd.Series([10.0, -10.0, 10.0, -10.0])
    assert metrics.nrmse(predicted, measured, 1000) == pytest.approx(0.01)
    assert metrics.nmae(predicted, measured, 1000) == pytest.approx(0.01)
    assert metrics.nbias(predicted + 5, measured, 1000) == pytest.approx(0.005)
    assert metrics.skill(0.1, 0.2) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [(0.0980, 0.1000, True), (0.0990, 0.1000, True), (0.0995, 0.1000, False), (0.11, 0.10, False)],
)
def test_gate_requires_the_margin(challenger: float, champion: float, promote: bool) -> None:
    decision = decide(
        "2", challenger, "1", champion, 0.01, "2013-01-01..2013-12-31", 8000, CALIBRATED
    )
    assert decision.promote is promote
    assert ("beats champion v1" in decision.reason) is promote
    assert decision.as_dict()["verdict"] == ("promoted" if promote else "refused")


def test_gate_promotes_the_first_model_and_rejects_bad_margins() -> None:
    first = decide("1", 0.2, None, None, 0.01, "w", 1, CALIBRATED)
    assert first.reason == "no champion yet: first model"
    assert not decide("1", 0.1, "1", 0.1, 0.01, "w", 1, CALIBRATED).promote
    with pytest.raises(ValueError, match="margin"):
        decide("2", 0.1, "1", 0.2, 1.5, "w", 1, CALIBRATED)

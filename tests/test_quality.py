"""Quality flags on synthetic days where we know exactly what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import weather_frame

from solar_mlops.data import TARGET
from solar_mlops.features import FeatureBuilder
from solar_mlops.quality import assess
from solar_mlops.site import Site

SITE = Site()


def _day(power: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    weather = weather_frame(periods=48)
    frame = weather.assign(**{TARGET: power})
    return frame, FeatureBuilder(SITE).build(weather)


def _clean_power(features: pd.DataFrame) -> np.ndarray:
    return (2800 * features["pvwatts_ac_pu"]).to_numpy()


def test_clean_day_is_usable_in_daylight_only() -> None:
    frame, feats = _day(np.zeros(48))
    frame[TARGET] = _clean_power(feats)
    report = assess(frame, feats, SITE)
    counts = report.counts()
    assert counts["night"] == int((feats["solar_elevation"] <= 0).sum())
    assert counts["missing"] == counts["impossible"] == counts["frozen"] == counts["outage"] == 0
    assert counts["usable"] == counts["rows"] - counts["night"]


def test_each_fault_is_flagged_and_counted() -> None:
    frame, feats = _day(np.zeros(48))
    power = _clean_power(feats)
    noon = int(np.argmax(power))
    power[noon - 6] = np.nan  # logger gap
    power[noon - 5] = 9999.0  # beyond any physics
    power[noon - 3 : noon] = power[noon - 3]  # stuck value for three steps
    power[noon + 2] = 0.0  # tripped inverter under strong sun
    frame[TARGET] = power
    counts = assess(frame, feats, SITE).counts()
    assert counts["missing"] == 1
    assert counts["impossible"] == 1
    assert counts["frozen"] == 3
    assert counts["outage"] == 1
    assert counts["usable"] == counts["rows"] - counts["night"] - 6


def test_clipping_is_flagged_but_stays_usable() -> None:
    frame, feats = _day(np.zeros(48))
    power = np.minimum(_clean_power(feats) * 1.4, 0.95 * SITE.capacity_w)
    frame[TARGET] = power
    report = assess(frame, feats, SITE)
    clipped = report.flags["clipping"]
    assert clipped.sum() >= 3
    assert report.usable[clipped].all()

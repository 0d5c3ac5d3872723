"""Forecast quantiles: the conformal offsets, the order and bounds of served quantiles,
the probabilistic scores and references, and the trained model's calibration."""

from __future__ import annotations

from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from solar_mlops import probabilistic
from solar_mlops.calibration import Calibration
from solar_mlops.features import FEATURE_NAMES, FeatureBuilder
from solar_mlops.gate import Coverage, decide
from solar_mlops.intervals import check_levels, level_name
from solar_mlops.predictor import MAX_OUTPUT_RATIO, PowerModel
from solar_mlops.training import TrainingResult

BUILDER = FeatureBuilder()


def test_level_names_and_bad_levels() -> None:
    assert [level_name(a) for a in (0.1, 0.5, 0.9, 0.025)] == ["p10", "p50", "p90", "p2_5"]
    assert check_levels([0.1, 0.9]) == (0.1, 0.9)
    for bad, words in (([], "at least one"), ([0.0, 0.5], "strictly between"),
                       ([0.5, 0.1], "increasing"), ([0.1, 0.1], "increasing"),
                       ([0.5, 0.5004], "share a name")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            check_levels(bad)


def test_offsets_are_the_conformal_order_statistics() -> None:
    # Scores 1..99: the 0.9 offset is the 90th of 99 by ceil(100 * 0.9), the 0.1 offset
    # the 10th by floor(100 * 0.1), so each one-sided bound holds at its level.
    calibration = Calibration(np.arange(1.0, 100.0), "w", 1)
    assert calibration.offsets((0.1, 0.5, 0.9)) == (10.0, 50.0, 90.0)
    # Few scores: the extreme levels take the extreme scores rather than failing.
    assert Calibration(np.array([-1.0, 2.0]), "w", 1).offsets((0.01, 0.99)) == (-1.0, 2.0)


def test_conformal_offsets_cover_new_draws_at_their_level() -> None:
    rng = np.random.default_rng(7)
    calibration = Calibration(np.sort(rng.standard_t(4, 4000)), "w", 1)
    low, high = calibration.offsets((0.1, 0.9))
    fresh = rng.standard_t(4, 200_000)
    assert np.mean((fresh >= low) & (fresh <= high)) == pytest.approx(0.8, abs=0.02)


def test_intervals_refuse_offsets_that_would_cross(model: PowerModel) -> None:
    intervals = model.intervals
    assert intervals is not None
    with pytest.raises(ValueError, match="must not decrease"):
        replace(intervals, offsets=(0.5, 0.0, 1.0))
    with pytest.raises(ValueError, match="3 levels but 2 offsets"):
        replace(intervals, offsets=(0.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(
    ghi=st.lists(st.floats(0, 1300), min_size=1, max_size=48),
    temp=st.floats(-20, 45),
    start=st.integers(0, 364 * 48),
)
def test_quantiles_never_cross_and_stay_in_the_plant_range(
    model: PowerModel, ghi: list[float], temp: float, start: int
) -> None:
    begin = pd.Timestamp("2013-01-01", tz="Etc/GMT+7") + pd.Timedelta(minutes=30 * start)
    frame = weather_frame(str(begin.tz_localize(None)), len(ghi), np.array(ghi), temp)
    feats = BUILDER.build(frame)
    power = model.predict(feats)
    quantiles = model.quantiles(feats, power)
    assert quantiles.shape == (len(ghi), 3)
    assert (np.diff(quantiles, axis=1) >= 0).all()
    assert (quantiles >= 0).all() and (quantiles <= MAX_OUTPUT_RATIO * model.site.capacity_w).all()
    night = feats["solar_elevation"].to_numpy() <= 0
    assert (quantiles[night] == 0).all()


def test_a_model_without_quantiles_says_so(model: PowerModel) -> None:
    feats = BUILDER.build(weather_frame(periods=4))
    point_only = PowerModel(model.booster, model.site)
    values = feats[list(FEATURE_NAMES)].to_numpy()
    assert point_only.quantiles_array(values, point_only.predict(feats)) is None
    with pytest.raises(ValueError, match="no quantiles"):
        point_only.quantiles(feats, point_only.predict(feats))


def test_the_spread_is_wider_under_broken_cloud_than_under_clear_sky(
    trained: TrainingResult,
) -> None:
    """On the 2013 holdout: the spread boosters have learned which skies are hard."""
    intervals = trained.model.intervals
    assert intervals is not None
    features = trained.features
    spread = intervals.spread(features[list(FEATURE_NAMES)].to_numpy())
    csi = features["clearsky_index"].to_numpy()
    clear, broken = csi > 0.9, (csi > 0.3) & (csi < 0.8)
    assert clear.sum() > 1000 and broken.sum() > 1000
    assert np.median(spread[broken]) > 2 * np.median(spread[clear])


def test_crps_and_pinball_reward_the_sharper_of_two_calibrated_forecasts() -> None:
    rng = np.random.default_rng(3)
    levels = probabilistic.EVAL_LEVELS
    truth = rng.normal(500, 50, 20_000)
    z = np.array([NormalDist().inv_cdf(a) for a in levels])
    sharp = truth[:, None] + 10 * z[None, :]  # knows each value to within 10 W
    vague = np.full((len(truth), len(levels)), 500.0) + 50 * z[None, :]
    for score in (probabilistic.crps, probabilistic.pinball):
        assert score(truth, sharp, levels).mean() < score(truth, vague, levels).mean()
    table = probabilistic.scores(
        truth, {"model": sharp, "ch_peen": vague, "climatology": vague}, levels, 1000.0
    )
    assert table.loc["model", "crps_skill_vs_ch_peen"] > 0.5
    assert table.loc["ch_peen", "coverage"] == pytest.approx(0.8, abs=0.01)
    reliability = probabilistic.reliability(truth, {"vague": vague}, levels)
    assert np.allclose(reliability["vague"], levels, atol=0.015)


def test_references_come_from_the_training_rows_only(trained: TrainingResult) -> None:
    features, measured = trained.features, trained.predictions["measured"]
    half = len(features) // 2
    early, late = features.iloc[:half], features.iloc[half:]
    levels = (0.1, 0.5, 0.9)
    for reference in (probabilistic.ch_peen, probabilistic.climatology):
        quantiles = reference(early, measured.iloc[:half], late, levels, 3150.0)
        assert quantiles.shape == (len(late), 3)
        assert np.isfinite(quantiles).all() and (np.diff(quantiles, axis=1) >= 0).all()
        # Doubling the training rows' power doubles the reference: nothing else feeds it.
        doubled = reference(early, 2 * measured.iloc[:half], late, levels, 3150.0)
        inside = doubled < MAX_OUTPUT_RATIO * 3150.0
        assert np.allclose(doubled[inside], 2 * quantiles[inside])


def test_the_trained_model_is_calibrated_and_sharper_than_its_references(
    trained: TrainingResult,
) -> None:
    table = trained.quantiles.table
    assert table.loc["model", "coverage"] == pytest.approx(0.8, abs=0.05)
    assert table.loc["model", "crps_skill_vs_ch_peen"] > 0.3
    assert table.loc["model", "crps_skill_vs_climatology"] > 0
    served = trained.quantiles.served
    assert list(served.columns) == ["p10", "p50", "p90"]
    assert (served.diff(axis=1).iloc[:, 1:] >= 0).all().all()
    # The median is a forecast as good as the point model, give or take.
    measured = trained.predictions["measured"]
    p50 = np.sqrt(np.mean((served["p50"] - measured) ** 2)) / 3150
    assert p50 <= trained.holdout.loc["model", "nrmse"] + 0.005
    assert set(trained.quantiles.by_season.index) == {"DJF", "MAM", "JJA", "SON"}
    assert trained.quantiles.reliability.index[0] == 0.05


def test_the_gate_requires_calibrated_quantiles() -> None:
    calibrated, wide = Coverage(0.79, 0.8), Coverage(0.91, 0.8)
    assert decide("2", 0.09, "1", 0.1, 0.01, "w", 1, calibrated).promote
    refused = decide("2", 0.09, "1", 0.1, 0.01, "w", 1, wide)
    assert not refused.promote
    assert refused.reason == (
        "quantiles not calibrated: holdout coverage 91.0% of its 80% interval (allowed 75% to 85%)"
    )
    first = decide("1", 0.09, None, None, 0.01, "w", 1, None)
    assert not first.promote and "no quantiles" in first.reason

"""Model behaviour on known cases, reproducibility, and time-ordered tuning."""

from __future__ import annotations

import itertools
from pathlib import Path

import mlflow.lightgbm
import numpy as np
import pandas as pd
import pytest
from conftest import FAST, weather_frame

from solar_mlops import model as lgbm
from solar_mlops.data import TimeWindow
from solar_mlops.errors import SchemaMismatchError
from solar_mlops.features import FeatureBuilder
from solar_mlops.predictor import MAX_OUTPUT_RATIO, PowerModel, load_model_dir
from solar_mlops.training import Prepared, TrainingConfig, TrainingResult, train

BUILDER = FeatureBuilder()


def test_zero_power_at_night(model: PowerModel) -> None:
    feats = BUILDER.build(weather_frame(periods=48))
    night = feats["solar_elevation"] <= 0
    assert (model.predict(feats)[night.to_numpy()] == 0).all()


def test_more_irradiance_gives_more_power(model: PowerModel) -> None:
    levels = [100.0, 300.0, 500.0, 700.0, 900.0]
    power = [
        model.predict(BUILDER.build(weather_frame("2013-06-21 11:00", 1, ghi=g)))[0] for g in levels
    ]
    assert all(b > a for a, b in itertools.pairwise(power)), power


def test_predictions_respect_capacity(model: PowerModel) -> None:
    feats = BUILDER.build(weather_frame("2013-04-01", 48 * 30))
    power = model.predict(feats)
    assert (power >= 0).all() and (power <= MAX_OUTPUT_RATIO * model.site.capacity_w).all()


def test_a_lone_row_is_close_to_the_same_row_in_a_series(model: PowerModel) -> None:
    series = BUILDER.build(weather_frame("2013-06-21", 48))
    noon = series.index[24]
    in_series = model.predict(series.loc[[noon]])[0]
    alone = model.predict(BUILDER.build(weather_frame("2013-06-21 12:00", 1)))[0]
    assert alone == pytest.approx(in_series, rel=0.1)


def test_training_is_reproducible(prepared: Prepared) -> None:
    # A year of training and four calibration folds: every step of the full job, quicker.
    small = TrainingConfig(
        train=TimeWindow("2012-01-01", "2012-12-31"),
        test=TimeWindow("2013-01-01", "2013-03-31"),
        tune=False,
        backtest=False,
        calibration_folds=4,
    )
    first, again = train(small, prepared), train(small, prepared)
    pd.testing.assert_frame_equal(again.predictions, first.predictions)
    assert again.model.intervals is not None and first.model.intervals is not None
    assert again.model.intervals.offsets == first.model.intervals.offsets


def test_model_beats_both_baselines_on_the_holdout(trained: TrainingResult) -> None:
    table = trained.holdout
    assert table.loc["model", "nrmse"] < 0.9 * table.loc["pvwatts", "nrmse"]
    assert table.loc["model", "skill_vs_persistence_24h"] > 0.5
    assert table.attrs["rows"] > 8000


def test_tuning_validates_only_on_later_rows(prepared: Prepared) -> None:
    rows = prepared.rows(FAST.train)
    x, y = prepared.features[rows].iloc[:3000], prepared.target[rows].iloc[:3000]
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    original = lgbm._fit_with_early_stopping

    def spy(train_x, train_y, valid_x, valid_y, params):
        seen.append((train_x.index.max(), valid_x.index.min()))
        return original(train_x, train_y, valid_x, valid_y, params)

    lgbm._fit_with_early_stopping = spy
    try:
        result = lgbm.tune(x, y, 3150.0, search_space={"num_leaves": [7, 15]})
    finally:
        lgbm._fit_with_early_stopping = original
    assert len(seen) == 2 * lgbm.CV_SPLITS
    assert all(last_train < first_valid for last_train, first_valid in seen)
    assert result.params["num_leaves"] in (7, 15) and len(result.trials) == 2
    assert np.isfinite(result.cv_nrmse)


def test_a_model_with_another_feature_schema_is_refused(tmp_path: Path, model: PowerModel) -> None:
    path = tmp_path / "model"
    mlflow.lightgbm.save_model(
        model.booster, path, metadata={"feature_schema_hash": "feedfacefeedface", "site": {}}
    )
    with pytest.raises(
        SchemaMismatchError, match="solar-power v7 was trained on feature schema feedface"
    ):
        load_model_dir(path, "solar-power", "7", "run")

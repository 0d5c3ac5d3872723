"""The learned model: LightGBM on physics features, tuned with time-series CV."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

from solar_mlops.features import CONTEXT_NAMES, FEATURE_NAMES
from solar_mlops.metrics import nrmse

SEED = 42
# One thread: two train only 1.4x faster alone, but when another job shares the cores,
# OpenMP's spin-waiting makes each training nine times slower (bench/training_threads.py).
TRAINING_THREADS = 1
BASE_PARAMS: dict[str, object] = {
    "objective": "regression",
    "learning_rate": 0.03,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "seed": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": TRAINING_THREADS,
    "verbose": -1,
}
SEARCH_SPACE: dict[str, list[object]] = {
    "num_leaves": [15, 31],
    "min_data_in_leaf": [20, 80],
    "lambda_l2": [0.0, 5.0],
}
MAX_ROUNDS = 3000
EARLY_STOPPING_ROUNDS = 100
CV_SPLITS = 3
# One day between a fold's training rows and its validation rows.
CV_GAP_ROWS = 48


@dataclass(frozen=True)
class TrainedParams:
    """What tuning chose, and the evidence for it."""

    params: dict[str, object]
    rounds: int
    cv_nrmse: float
    trials: list[dict[str, object]] = field(default_factory=list)


def with_context_dropout(
    features: pd.DataFrame, target: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """The training rows twice: as sent in a series, and with no neighbours at all,
    so a single-row request gets a model that has learned to do without them."""
    isolated = features.copy()
    isolated[list(CONTEXT_NAMES)] = np.nan
    return pd.concat([features, isolated]), pd.concat([target, target])


def fit(
    features: pd.DataFrame, target: pd.Series, params: dict[str, object], rounds: int
) -> lgb.Booster:
    rows, labels = with_context_dropout(features[list(FEATURE_NAMES)], target)
    dataset = lgb.Dataset(rows, labels, free_raw_data=True)
    return lgb.train({**BASE_PARAMS, **params}, dataset, num_boost_round=rounds)


def tune(
    features: pd.DataFrame,
    target: pd.Series,
    capacity_w: float,
    search_space: dict[str, list[object]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainedParams:
    """Grid search with expanding-window, time-ordered folds and early stopping.

    Rows must be in time order; validation rows always come after training rows.
    """
    space = search_space if search_space is not None else SEARCH_SPACE
    keys = list(space)
    splitter = TimeSeriesSplit(n_splits=CV_SPLITS, gap=CV_GAP_ROWS)
    folds = list(splitter.split(features))
    trials: list[dict[str, object]] = []
    # (cv nRMSE, rounds, params) of each trial, for choosing the best.
    scored: list[tuple[float, int, dict[str, object]]] = []
    for values in itertools.product(*(space[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        errors, rounds = [], []
        for train_idx, valid_idx in folds:
            booster = _fit_with_early_stopping(
                features.iloc[train_idx],
                target.iloc[train_idx],
                features.iloc[valid_idx],
                target.iloc[valid_idx],
                params,
            )
            predicted = np.clip(booster.predict(features.iloc[valid_idx]), 0, None)
            errors.append(
                nrmse(
                    pd.Series(predicted), target.iloc[valid_idx].reset_index(drop=True), capacity_w
                )
            )
            rounds.append(booster.best_iteration or MAX_ROUNDS)
        cv_nrmse, mean_rounds = float(np.mean(errors)), int(np.mean(rounds))
        trials.append({**params, "cv_nrmse": cv_nrmse, "rounds": mean_rounds})
        scored.append((cv_nrmse, mean_rounds, params))
        if progress:
            progress(f"tuning {params}: cv nRMSE {cv_nrmse:.4f}")
    cv_nrmse, best_rounds, best = min(scored, key=lambda trial: trial[0])
    return TrainedParams(params=best, rounds=best_rounds, cv_nrmse=cv_nrmse, trials=trials)


def _fit_with_early_stopping(
    train_x: pd.DataFrame,
    train_y: pd.Series,
    valid_x: pd.DataFrame,
    valid_y: pd.Series,
    params: dict[str, object],
) -> lgb.Booster:
    rows, labels = with_context_dropout(train_x, train_y)
    train_set = lgb.Dataset(rows, labels)
    valid_set = lgb.Dataset(valid_x, valid_y, reference=train_set)
    return lgb.train(
        {**BASE_PARAMS, **params, "metric": "rmse"},
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )

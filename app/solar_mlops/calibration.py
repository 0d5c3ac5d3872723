"""Conformal calibration of the forecast quantiles, on time-ordered data.

The calibration rows are the last part of the training window, cut into consecutive
folds. Each fold is forecast by a point model and spread boosters trained only on rows
that end a day before the fold starts, as the deployed model will forecast days it has
not seen. Each out-of-fold residual, divided by its row's spread, is a score; the
quantiles of the scores are the offsets ``Intervals`` serves (split conformal
prediction with a learned spread: Lei et al. 2018, "normalised" scores).

Every row is scored twice, with its neighbours and without, because the service
answers single-row requests with no neighbours too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from solar_mlops import model as lgbm
from solar_mlops.errors import DataValidationError
from solar_mlops.features import CONTEXT_NAMES, FEATURE_NAMES
from solar_mlops.intervals import MIN_SPREAD_RATIO, SPREAD_LEVELS, check_levels, spread
from solar_mlops.predictor import PowerModel
from solar_mlops.site import Site

# A year and a third: every season at least once, more than a year ahead of the fold
# models' own training data for the folds at the end.
CALIBRATION_DAYS = 500
CALIBRATION_FOLDS = 12
# The gap between a fold model's last training row and the fold: one day, as in tuning.
FOLD_GAP = pd.Timedelta(days=1)
# Fold models need data to learn from: about a month of daytime rows.
MIN_FOLD_TRAIN_ROWS = 500


@dataclass(frozen=True)
class Calibration:
    """The sorted out-of-fold scores, and where they come from."""

    scores: np.ndarray
    window: str
    folds: int

    def offsets(self, levels: Sequence[float]) -> tuple[float, ...]:
        """The conformal offset of each level: the order statistic of the scores at
        rank ceil((n + 1) a) for levels from the median up and floor((n + 1) a) below
        it, so each one-sided bound holds with at least its nominal probability."""
        n = len(self.scores)
        offsets = []
        for level in check_levels(levels):
            rank = math.ceil((n + 1) * level) if level >= 0.5 else math.floor((n + 1) * level)
            offsets.append(float(self.scores[min(max(rank, 1), n) - 1]))
        return tuple(offsets)


def spread_boosters(
    features: pd.DataFrame, target: pd.Series, params: dict[str, object], rounds: int
) -> tuple[lgb.Booster, lgb.Booster]:
    """LightGBM quantile boosters at ``SPREAD_LEVELS``, with the point model's settings."""
    lower, upper = (
        lgbm.fit(features, target, {**params, "objective": "quantile", "alpha": level}, rounds)
        for level in SPREAD_LEVELS
    )
    return lower, upper


def calibrate(
    features: pd.DataFrame,
    target: pd.Series,
    params: dict[str, object],
    rounds: int,
    site: Site,
    days: int = CALIBRATION_DAYS,
    folds: int = CALIBRATION_FOLDS,
) -> Calibration:
    """Out-of-fold scores over the last ``days`` of the rows (in time order), in
    ``folds`` consecutive folds."""
    times = pd.DatetimeIndex(features.index)
    start = max(times[-1] - pd.Timedelta(days=days), times[0] + FOLD_GAP)
    positions = np.flatnonzero(times >= start)
    scores = []
    for fold in np.array_split(positions, folds):
        before = times < times[fold[0]] - FOLD_GAP
        if before.sum() < MIN_FOLD_TRAIN_ROWS:
            continue
        x, y = features[before], target[before]
        model = PowerModel(lgbm.fit(x, y, params, rounds), site)
        lower, upper = spread_boosters(x, y, params, rounds)
        min_spread_w = MIN_SPREAD_RATIO * site.capacity_w
        rows = features.iloc[fold][list(FEATURE_NAMES)]
        isolated = rows.copy()
        isolated[list(CONTEXT_NAMES)] = np.nan
        measured = target.iloc[fold].to_numpy()
        for variant in (rows, isolated):
            values = variant.to_numpy(dtype="float64")
            residuals = measured - model.predict_array(values)
            scores.append(residuals / spread(lower, upper, values, min_spread_w))
    if not scores:
        raise DataValidationError(
            f"no calibration fold had {MIN_FOLD_TRAIN_ROWS} usable rows before it: the "
            "training window is too short to calibrate quantiles"
        )
    window = f"{times[positions[0]].date()}/{times[-1].date()}"
    return Calibration(np.sort(np.concatenate(scores)), window, len(scores) // 2)

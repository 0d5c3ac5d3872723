"""Probabilistic evaluation: quantile forecasts scored with ``scoringrules`` against two
probabilistic references built from the training window only.

Conventions are the Solar Forecast Arbiter's: errors normalised by capacity, skill =
1 - score / reference score. CRPS is approximated from quantiles on ``EVAL_LEVELS``
(the mean pinball loss over 19 levels, times two).

- ``ch_peen``: the complete-history persistence ensemble. The plant's clear-sky index
  (power over clear-sky power) at the same time of day on every day of the training
  window, times the clear-sky power of the row forecast. It knows the season's sun but
  not the weather.
- ``climatology``: the same ratio, from training rows at the same hour and with the
  same clear-sky index of GHI (bins of 0.1). It sees the weather the model sees, so it
  is the harder reference to beat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scoringrules as sr

from solar_mlops.calibration import Calibration
from solar_mlops.evaluation import SEASONS
from solar_mlops.predictor import MAX_OUTPUT_RATIO, PowerModel

EVAL_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
CENTRAL = (0.1, 0.9)  # the interval whose coverage is judged: nominally 80 %
MODEL = "model"
CH_PEEN = "ch_peen"
CLIMATOLOGY = "climatology"
REFERENCES = (CH_PEEN, CLIMATOLOGY)
# Below this share of capacity, clear-sky power is too small for a ratio to mean much.
_MIN_CLEAR_RATIO = 0.02
_CSI_BIN = 0.1


def clear_sky_power(features: pd.DataFrame, capacity_w: float) -> np.ndarray:
    """Clear-sky plane-of-array irradiance as power at the plant's capacity, floored."""
    clear = capacity_w * features["poa_global_clear"].to_numpy() / 1000.0
    return np.maximum(clear, _MIN_CLEAR_RATIO * capacity_w)


def ch_peen(
    train_features: pd.DataFrame,
    train_target: pd.Series,
    features: pd.DataFrame,
    levels: tuple[float, ...],
    capacity_w: float,
) -> np.ndarray:
    """Complete-history persistence ensemble quantiles, (rows, levels), in watts."""
    return _conditional_ensemble(
        train_features, train_target, features, levels, capacity_w, _time_of_day
    )


def climatology(
    train_features: pd.DataFrame,
    train_target: pd.Series,
    features: pd.DataFrame,
    levels: tuple[float, ...],
    capacity_w: float,
) -> np.ndarray:
    """Hour x clear-sky-index climatology quantiles, (rows, levels), in watts."""

    def key(frame: pd.DataFrame) -> np.ndarray:
        csi_bin = np.floor(frame["clearsky_index"].to_numpy() / _CSI_BIN).astype(int)
        return pd.DatetimeIndex(frame.index).hour.to_numpy() * 100 + csi_bin

    return _conditional_ensemble(train_features, train_target, features, levels, capacity_w, key)


def _time_of_day(frame: pd.DataFrame) -> np.ndarray:
    index = pd.DatetimeIndex(frame.index)
    return (index.hour * 60 + index.minute).to_numpy()


def _conditional_ensemble(
    train_features: pd.DataFrame,
    train_target: pd.Series,
    features: pd.DataFrame,
    levels: tuple[float, ...],
    capacity_w: float,
    key: Callable[[pd.DataFrame], np.ndarray],
) -> np.ndarray:
    """Quantiles of the training rows' power-to-clear-sky ratio within each row's group
    (``key``), times the row's clear-sky power. A group the training rows never saw
    falls back to the same time of day."""
    ratio = pd.Series(
        train_target.to_numpy() / clear_sky_power(train_features, capacity_w),
        index=train_features.index,
    )
    by_key = ratio.groupby(key(train_features)).quantile(list(levels)).unstack()
    by_time = ratio.groupby(_time_of_day(train_features)).quantile(list(levels)).unstack()
    found = by_key.reindex(key(features)).to_numpy()
    fallback = by_time.reindex(_time_of_day(features)).to_numpy()
    ratios = np.where(np.isnan(found), fallback, found)
    power = ratios * clear_sky_power(features, capacity_w)[:, None]
    return np.clip(np.nan_to_num(power), 0.0, MAX_OUTPUT_RATIO * capacity_w)


def crps(measured: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Each row's CRPS, approximated from quantiles at ``levels``, in watts."""
    return np.asarray(sr.crps_quantile(measured, quantiles, np.asarray(levels), backend="numpy"))


def pinball(measured: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Each row's pinball loss averaged over ``levels``, in watts."""
    losses = sr.quantile_score(measured[:, None], quantiles, np.asarray(levels)[None, :])
    return np.asarray(losses).mean(axis=1)


def central_interval(
    quantiles: np.ndarray, levels: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``CENTRAL`` quantiles' columns: the P10 and P90 forecasts."""
    low, high = (levels.index(level) for level in CENTRAL)
    return quantiles[:, low], quantiles[:, high]


def coverage(measured: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """The share of measured values within [``low``, ``high``]."""
    return float(np.mean((measured >= low) & (measured <= high)))


def scores(
    measured: np.ndarray,
    forecasts: dict[str, np.ndarray],
    levels: tuple[float, ...],
    capacity_w: float,
) -> pd.DataFrame:
    """One row per method: CRPS (normalised), its skill against each reference, and
    the P10-P90 interval's coverage and mean width (normalised)."""
    table = {}
    for method, quantiles in forecasts.items():
        low, high = central_interval(quantiles, levels)
        table[method] = {
            "crps": float(crps(measured, quantiles, levels).mean() / capacity_w),
            "coverage": coverage(measured, low, high),
            "width": float(np.mean(high - low) / capacity_w),
        }
    frame = pd.DataFrame(table).T
    for reference in REFERENCES:
        if reference in frame.index:
            frame[f"crps_skill_vs_{reference}"] = 1 - frame["crps"] / frame.loc[reference, "crps"]
    return frame


def breakdown(
    measured: pd.Series,
    forecasts: dict[str, np.ndarray],
    levels: tuple[float, ...],
    capacity_w: float,
    key: str,
) -> pd.DataFrame:
    """The model's coverage, width and CRPS skill against each reference, by
    ``season`` or ``hour``."""
    index = pd.DatetimeIndex(measured.index)
    labels = index.month.map(SEASONS).to_numpy() if key == "season" else index.hour.to_numpy()
    rows = {}
    for label in pd.unique(labels):
        inside = labels == label
        table = scores(
            measured.to_numpy()[inside],
            {method: q[inside] for method, q in forecasts.items()},
            levels,
            capacity_w,
        )
        rows[label] = table.loc[MODEL, [c for c in table.columns if c != "crps"]]
    return pd.DataFrame(rows).T.sort_index().rename_axis(key)


def reliability(
    measured: np.ndarray, forecasts: dict[str, np.ndarray], levels: tuple[float, ...]
) -> pd.DataFrame:
    """For each level, the share of measured values at or below each method's quantile:
    a calibrated forecast lies on the diagonal."""
    return pd.DataFrame(
        {method: (measured[:, None] <= q).mean(axis=0) for method, q in forecasts.items()},
        index=pd.Index(levels, name="level"),
    )


@dataclass(frozen=True)
class QuantileEvaluation:
    """The holdout's probabilistic scores, their breakdowns and the served quantiles."""

    table: pd.DataFrame
    by_season: pd.DataFrame
    by_hour: pd.DataFrame
    reliability: pd.DataFrame
    served: pd.DataFrame
    pinball: float


def evaluate(
    model: PowerModel,
    calibration: Calibration,
    train_features: pd.DataFrame,
    train_target: pd.Series,
    features: pd.DataFrame,
    measured: pd.Series,
    point: np.ndarray,
) -> QuantileEvaluation:
    """Score ``model``'s quantiles around its ``point`` forecasts on the holdout rows
    (``features``, ``measured``) against both references, built from the training rows
    only."""
    if model.intervals is None:
        raise ValueError("the model has no quantiles to evaluate")
    capacity_w = model.site.capacity_w
    graded = replace(
        model, intervals=replace(
            model.intervals, levels=EVAL_LEVELS, offsets=calibration.offsets(EVAL_LEVELS)
        )
    )  # fmt: skip
    reference = (train_features, train_target, features, EVAL_LEVELS, capacity_w)
    forecasts = {
        MODEL: graded.quantiles(features, point),
        CH_PEEN: ch_peen(*reference),
        CLIMATOLOGY: climatology(*reference),
    }
    observed = measured.to_numpy()
    levels = model.intervals.levels
    served = model.quantiles(features, point)
    return QuantileEvaluation(
        table=scores(observed, forecasts, EVAL_LEVELS, capacity_w),
        by_season=breakdown(measured, forecasts, EVAL_LEVELS, capacity_w, "season"),
        by_hour=breakdown(measured, forecasts, EVAL_LEVELS, capacity_w, "hour"),
        reliability=reliability(observed, forecasts, EVAL_LEVELS),
        served=pd.DataFrame(served, index=features.index, columns=list(model.intervals.names)),
        pinball=float(pinball(observed, served, levels).mean() / capacity_w),
    )

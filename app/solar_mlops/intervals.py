"""Forecast quantiles around the point forecast: a learned spread, conformally scaled.

Two LightGBM quantile boosters (at ``SPREAD_LEVELS``) say how uncertain each row is:
their difference is the row's spread, wide under broken cloud, narrow under clear sky.
Conformal calibration (``calibration.py``) turns that spread into quantiles at any
level: the quantile at level *a* is ``point + spread * offset[a]``, where ``offset[a]``
is the *a*-quantile of out-of-fold residuals divided by their spread. The offsets
rise with the level and the spread is positive, so quantiles never cross; clipping to
the plant's output range keeps that order.

Serving imports this module: numpy and LightGBM only.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

# The quantile boosters whose difference is the spread: the central 80 % of the error.
SPREAD_LEVELS = (0.1, 0.9)
# What /predict serves when training is not told otherwise.
DEFAULT_LEVELS = (0.1, 0.5, 0.9)
# A floor on the spread, as a share of capacity: the boosters can meet at night or
# at the edges of the data, and a zero spread would make every residual infinite.
MIN_SPREAD_RATIO = 0.01


def level_name(level: float) -> str:
    """``0.1`` -> ``p10``: the key a quantile has in the API and in metrics."""
    percent = round(level * 100, 1)
    return f"p{percent:g}".replace(".", "_")


def spread(
    lower: lgb.Booster, upper: lgb.Booster, values: np.ndarray, min_spread_w: float
) -> np.ndarray:
    """Each row's spread in watts: the upper minus the lower booster, at least the floor."""
    low = np.asarray(lower.predict(values, num_threads=1))
    high = np.asarray(upper.predict(values, num_threads=1))
    return np.maximum(high - low, min_spread_w)


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Levels strictly inside (0, 1), strictly increasing, each named uniquely."""
    checked = tuple(float(level) for level in levels)
    if not checked:
        raise ValueError("at least one quantile level is needed")
    if any(not 0 < level < 1 for level in checked):
        raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {checked}")
    if any(b <= a for a, b in itertools.pairwise(checked)):
        raise ValueError(f"quantile levels must be strictly increasing, got {checked}")
    if len({level_name(level) for level in checked}) < len(checked):
        raise ValueError(f"quantile levels closer than 0.001 share a name: {checked}")
    return checked


@dataclass(frozen=True)
class Intervals:
    """The spread boosters and, for each served level, its calibrated offset."""

    lower: lgb.Booster
    upper: lgb.Booster
    levels: tuple[float, ...]
    offsets: tuple[float, ...]
    min_spread_w: float

    def __post_init__(self) -> None:
        check_levels(self.levels)
        if len(self.offsets) != len(self.levels):
            raise ValueError(f"{len(self.levels)} levels but {len(self.offsets)} offsets")
        if any(b < a for a, b in itertools.pairwise(self.offsets)):
            raise ValueError(f"offsets must not decrease with the level: {self.offsets}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(level_name(level) for level in self.levels)

    def spread(self, values: np.ndarray) -> np.ndarray:
        """Each row's spread in watts (``spread`` with this model's boosters)."""
        return spread(self.lower, self.upper, values, self.min_spread_w)

    def quantiles(
        self, values: np.ndarray, point: np.ndarray, low: float, high: float
    ) -> np.ndarray:
        """An (n, len(levels)) array of quantiles in watts around ``point``, each within
        [``low``, ``high``] and in increasing order along each row."""
        offsets = np.asarray(self.offsets)
        raw = point[:, None] + self.spread(values)[:, None] * offsets[None, :]
        return np.clip(raw, low, high)

    def metadata(self) -> dict[str, object]:
        """What the model folder's metadata keeps (the boosters are files beside it)."""
        return {
            "levels": list(self.levels),
            "offsets": list(self.offsets),
            "spread_levels": list(SPREAD_LEVELS),
            "min_spread_w": self.min_spread_w,
        }

"""The two references every model must beat: the PVWatts physical model and
24-hour smart persistence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from solar_mlops.errors import DataValidationError

# Persistence's clear-sky ratio is meaningless when the sun was barely up yesterday.
_MIN_POA_CLEAR = 20.0
_MAX_PERSISTED_RATIO = 1.5


@dataclass(frozen=True)
class PVWattsBaseline:
    """PVWatts on the same weather, scaled to the plant by one factor.

    ``scale_w`` is the plant's effective DC nameplate in watts, fitted by least squares
    on the training window only.
    """

    scale_w: float

    @classmethod
    def fit(cls, features: pd.DataFrame, power: pd.Series) -> PVWattsBaseline:
        unit = features["pvwatts_ac_pu"].to_numpy()
        target = power.to_numpy()
        ok = np.isfinite(unit) & np.isfinite(target)
        denominator = float(np.dot(unit[ok], unit[ok]))
        if denominator <= 0:
            raise DataValidationError("cannot fit PVWatts scale: no daylight rows in the window")
        return cls(scale_w=float(np.dot(unit[ok], target[ok]) / denominator))

    def predict(self, features: pd.DataFrame) -> pd.Series:
        return pd.Series(self.scale_w * features["pvwatts_ac_pu"].to_numpy(), index=features.index)


def smart_persistence(features: pd.DataFrame, power: pd.Series, capacity_w: float) -> pd.Series:
    """24 h smart persistence: yesterday's clear-sky index of power at the same clock
    time, times today's clear-sky power. NaN where yesterday's power is unknown.

    Clear-sky power is capacity times clear-sky POA over 1000 W/m2: the scale cancels
    in the forecast, and keeps the index dimensionless so it can be bounded.

    Pass the whole history (features and measured power on one grid) and select the
    rows to score afterwards, so the first day of a window can look back.
    """
    clear_power = features["poa_global_clear"] * capacity_w / 1000.0
    yesterday = features.index - pd.Timedelta(days=1)
    power_then = power.reindex(yesterday).to_numpy()
    clear_then = clear_power.reindex(yesterday).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            clear_then > _MIN_POA_CLEAR * capacity_w / 1000.0,
            np.clip(power_then / clear_then, 0.0, _MAX_PERSISTED_RATIO),
            np.nan,
        )
    forecast = ratio * clear_power.to_numpy()
    # Sun barely up yesterday at this time: yesterday's plain value is the honest guess.
    forecast = np.where(np.isnan(ratio), power_then, forecast)
    return pd.Series(forecast, index=features.index)

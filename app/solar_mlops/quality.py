"""Quality filtering of the aligned dataset, with a count for every reason a row goes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from solar_mlops.data import TARGET
from solar_mlops.site import Site

# Physical limits for inputs: the same ranges the prediction API accepts.
GHI_RANGE = (0.0, 1500.0)
TEMP_AIR_RANGE = (-50.0, 60.0)
# Power beyond 120 % of capacity, or below a small negative tare, is a sensor fault.
MAX_POWER_RATIO = 1.2
MIN_POWER_W = -10.0
# A value repeated this many grid steps in daylight is a stuck logger, not weather.
FROZEN_STEPS = 3
# Near-zero output under strong sun: snow cover, inverter trip or a logging outage.
OUTAGE_POA = 300.0
OUTAGE_RATIO = 0.01
# A flat top near capacity for this many steps is inverter clipping.
CLIPPING_RATIO = 0.9
CLIPPING_STEPS = 3
CLIPPING_TOLERANCE = 0.005


@dataclass(frozen=True)
class QualityReport:
    """Per-row flags and the counts behind them."""

    flags: pd.DataFrame

    @property
    def usable(self) -> pd.Series:
        """Daytime rows with a trustworthy target: what models train and are scored on."""
        bad = self.flags.drop(columns=["clipping"]).any(axis=1)
        return ~bad

    def counts(self) -> dict[str, int]:
        counts = {name: int(self.flags[name].sum()) for name in self.flags.columns}
        counts["rows"] = len(self.flags)
        counts["usable"] = int(self.usable.sum())
        return counts


def assess(frame: pd.DataFrame, features: pd.DataFrame, site: Site) -> QualityReport:
    """Flag each row of an aligned frame (weather + target) with why it is unusable.

    Clipped rows stay usable for the learned model (clipping is real behaviour it
    should learn) but are kept out of the physical model's scale fit.
    """
    power = frame[TARGET]
    daytime = features["solar_elevation"] > 0
    flags = pd.DataFrame(index=frame.index)
    flags["night"] = ~daytime
    flags["missing"] = frame[[TARGET, "ghi", "temp_air"]].isna().any(axis=1)
    flags["impossible"] = (
        (power < MIN_POWER_W)
        | (power > MAX_POWER_RATIO * site.capacity_w)
        | ~frame["ghi"].between(*GHI_RANGE)
        | ~frame["temp_air"].between(*TEMP_AIR_RANGE)
    ) & ~flags["missing"]
    flags["outage"] = (
        daytime & (features["poa_global"] > OUTAGE_POA) & (power < OUTAGE_RATIO * site.capacity_w)
    )
    high = power > CLIPPING_RATIO * site.capacity_w
    flat = (
        (power.diff().abs() <= CLIPPING_TOLERANCE * site.capacity_w)
        & high
        & high.shift(1, fill_value=False)
    )
    flags["clipping"] = _runs_of(flat, CLIPPING_STEPS - 1) & daytime
    # A clipped inverter repeats its limit: that is a plateau, not a stuck logger.
    flags["frozen"] = daytime & _repeats(power, FROZEN_STEPS) & (power > 0) & ~flags["clipping"]
    return QualityReport(flags=flags.astype(bool))


def _repeats(values: pd.Series, steps: int) -> pd.Series:
    """True where a value equals the ones before it for ``steps`` consecutive rows."""
    same = values.diff().eq(0)
    return _runs_of(same, steps - 1)


def _runs_of(mask: pd.Series, length: int) -> pd.Series:
    """True on every row that belongs to a run of at least ``length`` Trues in ``mask``."""
    run_id = (mask != mask.shift()).cumsum()
    run_length = mask.groupby(run_id).transform("size")
    in_run = mask & (run_length >= length)
    # The row before a run of equal diffs is part of the plateau too.
    return in_run | in_run.shift(-1, fill_value=False)

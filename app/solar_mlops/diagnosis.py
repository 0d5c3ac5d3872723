"""What a drift alarm most likely means, and the evidence for it.

The monitor's checks (``drift.monitor``) say *that* a window is wrong; this names the
likely cause from which checks fired and from two pieces of physics evidence computed
here: the time offset between measured power and the power physics expects from the
weather as stamped, and the shape of the plant's shortfall over the days of the window.

Causes fall in two groups. Data faults (an irradiance sensor, a clock) are repaired
where the data comes from: retraining on them would teach the next model the fault.
Plant changes and weather regimes are what retraining is for. Why each rule is what it
is: docs/drift.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd


class Cause(StrEnum):
    TIME_MISALIGNMENT = "time-misalignment"
    IRRADIANCE_SENSOR = "irradiance-sensor"
    CLIPPING = "clipping"
    PLANT_LOSS_STEP = "plant-loss-step"
    PLANT_LOSS_GRADUAL = "plant-loss-gradual"
    UNEXPLAINED = "unexplained"
    WEATHER_REGIME = "weather-regime"
    NONE = "none"


# Fixed at the source, never by a model trained on them.
DATA_FAULTS = frozenset({Cause.TIME_MISALIGNMENT, Cause.IRRADIANCE_SENSOR})
# Ratios that move with the weather itself, not with a sensor or the plant.
WEATHER_RATIOS = frozenset({"clearsky_index", "temp_air", "predicted_to_physical"})


@dataclass(frozen=True)
class Diagnosis:
    cause: Cause
    evidence: str

    @property
    def data_fault(self) -> bool:
        return self.cause in DATA_FAULTS


def time_offset(
    physical_w: pd.Series, measured_w: pd.Series, max_offset: pd.Timedelta, min_rows: int
) -> tuple[pd.Timedelta, float, float]:
    """The shift that lines measured power up best with ``physical_w`` (what physics
    expects from the weather as stamped), within ``max_offset`` either way.

    Returns the offset (positive: the power matches physics computed from weather
    stamped that much later, i.e. the weather arrives late), and the correlation at
    that offset and as stamped. Rows where both are dark are left out: nights agree
    whatever the clock says. ``pd.NaT`` and NaNs when fewer than ``min_rows`` pairs.
    """
    index = pd.DatetimeIndex(physical_w.index)
    if len(index) < 2:
        return pd.NaT, float("nan"), float("nan")
    step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
    grid = pd.date_range(index.min(), index.max(), freq=step)
    physical = physical_w.reindex(grid)
    measured = measured_w.reindex(grid)
    correlations: dict[int, float] = {}
    for steps in range(-int(max_offset / step), int(max_offset / step) + 1):
        later = physical.shift(-steps)
        lit = (later > 0) | (measured > 0)
        pairs = pd.DataFrame({"physical": later, "measured": measured})[lit].dropna()
        if len(pairs) >= min_rows and pairs.std().min() > 0:
            correlations[steps] = float(pairs["physical"].corr(pairs["measured"]))
    if 0 not in correlations:
        return pd.NaT, float("nan"), float("nan")
    best = max(correlations, key=lambda k: (correlations[k], -abs(k)))
    return best * step, correlations[best], correlations[0]


def loss_shape(
    daily_ratio: pd.Series, min_drop: float = 0.03, max_step_share: float = 2 / 3
) -> str:
    """``"gradual"`` when the plant's delivered share fell week after week, else ``"step"``.

    ``daily_ratio`` is indexed by day. Its weeks, counted back from the last day, each
    give a median (a median: one cloudy day the forecast missed is an outlier, not a
    trend). The loss is gradual when the first week's median lies at least ``min_drop``
    above the last week's and no single week-to-week fall carries ``max_step_share`` of
    that drop or more; a step carries nearly all of it. Under three weeks: a step.
    """
    known = daily_ratio.dropna()
    days = pd.Series(known.to_numpy(), index=pd.to_datetime(known.index))
    if days.empty:
        return "step"
    weeks_back = (days.index.max() - days.index).days // 7
    medians = days.groupby(weeks_back).median().sort_index(ascending=False).to_numpy()
    if len(medians) < 3:
        return "step"
    total = medians[0] - medians[-1]
    largest = float(np.max(medians[:-1] - medians[1:]))
    return "gradual" if total >= min_drop and largest < max_step_share * total else "step"


def diagnose(
    problems: Mapping[str, str], drifted: Sequence[str], daily_ratio: pd.Series
) -> Diagnosis:
    """The likely cause of a window's alarms.

    ``problems``: the checks that fired, by name (``time_offset``, ``surplus``,
    ``clipping``, ``peak``, ``nrmse``), each with its words; ``drifted``: the ratios
    whose distribution drifted; ``daily_ratio``: the plant's delivered share of the
    forecast per day, for the shape of a loss. The first rule that matches names it:
    a clock first (a shifted day moves every other figure), then the irradiance
    sensor, an inverter ceiling, a plant loss, drift in the weather, and last an error
    with no named cause.
    """
    if "time_offset" in problems:
        return Diagnosis(Cause.TIME_MISALIGNMENT, problems["time_offset"])
    if "surplus" in problems:
        return Diagnosis(Cause.IRRADIANCE_SENSOR, problems["surplus"])
    if "measured_to_physical" in drifted and "peak" not in problems:
        return Diagnosis(
            Cause.IRRADIANCE_SENSOR,
            "the power meter and the irradiance sensor disagree on clear rows "
            "(measured_to_physical drifted) while the plant delivers its forecast",
        )
    if "clipping" in problems:
        return Diagnosis(Cause.CLIPPING, problems["clipping"])
    if "peak" in problems:
        shape = loss_shape(daily_ratio)
        cause = Cause.PLANT_LOSS_GRADUAL if shape == "gradual" else Cause.PLANT_LOSS_STEP
        days = daily_ratio.dropna()
        trend = (
            f"{days.iloc[:3].median():.2f} in its first days to {days.iloc[-3:].median():.2f} "
            f"in its last, over {len(days)} days"
            if len(days)
            else "no day to judge"
        )
        return Diagnosis(cause, f"{problems['peak']}; daily delivered share {trend} ({shape})")
    weather = [name for name in drifted if name in WEATHER_RATIOS]
    if weather:
        error = problems.get("nrmse", "the forecasts keep their promise")
        return Diagnosis(Cause.WEATHER_REGIME, f"{', '.join(weather)} drifted; {error}")
    if "nrmse" in problems:
        return Diagnosis(Cause.UNEXPLAINED, problems["nrmse"])
    return Diagnosis(Cause.NONE, "no check fired")

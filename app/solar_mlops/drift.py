"""Drift that understands sunlight: is the live traffic still the plant the model knows?

Pure functions over DataFrames shaped like the prediction store (a timezone-aware
index; columns ghi, temp_air, predicted_w and measured_w, NaN until the actual
arrives). Two questions, each answered only on daytime rows (sun above
``min_elevation_deg``); night rows are counted and never judged:

- data drift: do season-free ratios (clear-sky index, the model against physics, the
  meter against physics) look like the same weeks of the training years? Evidently
  computes one drift score per ratio.
- performance drift: once actuals exist, is the window's nRMSE within a tolerance of
  what the backtest promised, does the plant still deliver what the model expects when
  it expects high output (and not far more: a low irradiance reading), and does its
  output sit at a flat ceiling while the model expects more (an inverter limit)?

Once actuals exist, the weather's clock is checked against the meter's too (a shift that
lines power up with physics better than the stamps do), and ``diagnosis`` names the
likely cause of any alarm.

Too few rows is "not enough data", never an alarm. The thresholds and why they are
what they are: docs/drift.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from evidently import Report
from evidently.metrics import ValueDrift

from solar_mlops.diagnosis import Cause, Diagnosis, diagnose, time_offset
from solar_mlops.errors import DataValidationError
from solar_mlops.features import FeatureBuilder
from solar_mlops.metrics import nrmse
from solar_mlops.predictor import PowerModel
from solar_mlops.site import Site

COLUMNS = ("ghi", "temp_air", "predicted_w", "measured_w")
# Evidently's method for every ratio: Wasserstein distance over the reference's
# standard deviation, so one threshold reads the same for every ratio.
DRIFT_METHOD = "wasserstein"


class DriftInputError(DataValidationError, ValueError):
    """A frame handed to the drift monitor cannot be judged: says what to fix."""


@dataclass(frozen=True)
class DriftConfig:
    """The monitor's knobs; defaults chosen by bench/drift_detection.py (docs/drift.md)."""

    # One monitoring window: a week holds sunny and cloudy days in most seasons.
    window: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(days=7))
    # Below a few degrees the clear-sky ratios are noise (horizon, refraction, shade).
    min_elevation_deg: float = 5.0
    # Season-matched reference: training rows within this many days of year of the window.
    season_days: int = 14
    # Rows the meter-versus-physics ratio uses: clear enough for physics to be tight.
    min_clearsky_index: float = 0.6
    # Below this many rows a distribution or an error is noise, not evidence.
    min_day_rows: int = 40
    min_actual_rows: int = 40
    min_peak_rows: int = 20
    # The shape of a loss (a step, or a gradual decline): the plant's delivered share day
    # by day over this many days up to the window's end (the window's own, and the days
    # before it when the caller has them); a day needs this many high-forecast rows.
    shape_days: int = 28
    min_rows_per_day: int = 3
    # Per-ratio drift thresholds on the normed Wasserstein distance.
    thresholds: dict[str, float] = field(
        default_factory=lambda: {
            "clearsky_index": 1.5,
            "temp_air": 2.0,
            "predicted_to_physical": 1.0,
            "measured_to_physical": 0.6,
        }
    )
    # Performance: the window's nRMSE may exceed the promise by this factor.
    nrmse_tolerance: float = 2.1
    # Rows where the model expects at least this share of capacity: where a capped or
    # degraded plant shows first.
    peak_share: float = 0.6
    # Alarm when the plant delivers less than this share of the model's peak forecast.
    min_peak_ratio: float = 0.92
    # Rows where the model expects at least this share of capacity, for the surplus
    # check: lower than peak_share because a low GHI reading lowers the forecast too.
    surplus_share: float = 0.4
    # Alarm when the plant delivers more than this multiple of the forecast there.
    max_surplus_ratio: float = 1.14
    # A capped inverter: rows within this share of capacity of the window's highest
    # measured power, with the forecast above that ceiling; alarm from this many rows.
    clip_tolerance: float = 0.005
    min_clipped_rows: int = 5
    # A ceiling below this share of capacity is a plant that is down (snow, an outage),
    # not an inverter limit: the peak ratio reports it, clipping does not count it.
    min_ceiling_share: float = 0.2
    # A clock: measured power against the power physics expects from the weather as
    # stamped, shifted up to this far either way; a shift that raises their correlation
    # by at least min_offset_gain is a misaligned clock.
    max_time_offset: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(hours=2))
    min_offset_gain: float = 0.035


@dataclass
class DriftResult:
    """What one monitoring run found: figures for Prometheus, words for an operator."""

    window_start: pd.Timestamp
    window_end: pd.Timestamp
    day_rows: int
    night_rows: int
    actual_rows: int
    scores: dict[str, float]
    drifted: list[str]
    data_drift: bool
    nrmse: float
    peak_ratio: float
    performance_drift: bool
    reason: str
    report_html: str = field(repr=False, default="")
    surplus_ratio: float = float("nan")
    clipped_rows: int = 0
    # Minutes to shift the weather's stamps by to line power up with physics (NaN: not
    # enough data), and the likely cause of any alarm with its evidence.
    time_offset_min: float = float("nan")
    diagnosis: Diagnosis = field(default_factory=lambda: Diagnosis(Cause.NONE, "no check fired"))

    @property
    def drift(self) -> bool:
        return self.data_drift or self.performance_drift


def training_reference(frame: pd.DataFrame, model: PowerModel) -> pd.DataFrame:
    """The training years in the store's shape: weather, the model's forecast of it and
    the measured power (``frame``: rows of ``data.load_dataset``, e.g. 2011-2012)."""
    builder = FeatureBuilder(model.site)
    features = builder.build(frame[["ghi", "temp_air"]])
    return pd.DataFrame(
        {
            "ghi": frame["ghi"],
            "temp_air": frame["temp_air"],
            "predicted_w": model.predict(features),
            "measured_w": frame["ac_power"],
        },
        index=frame.index,
    )


def monitoring_features(
    frame: pd.DataFrame, builder: FeatureBuilder, config: DriftConfig
) -> pd.DataFrame:
    """Per-row ratios the drift tests compare, and whether the row is daytime.

    Each ratio is free of the season by construction: the sun's height is divided out.
    """
    site = builder.site
    features = builder.build(frame[["ghi", "temp_air"]])
    physical_w = site.capacity_w * features["pvwatts_ac_pu"]
    # Where physics expects almost nothing, a ratio to it is noise.
    lit = physical_w > 0.05 * site.capacity_w
    with np.errstate(divide="ignore", invalid="ignore"):
        to_physical = (frame[["predicted_w", "measured_w"]].T / physical_w).T.where(lit, axis=0)
    clear = features["clearsky_index"] >= config.min_clearsky_index
    return pd.DataFrame(
        {
            "daytime": features["solar_elevation"] >= config.min_elevation_deg,
            "physical_w": physical_w,
            "clearsky_index": features["clearsky_index"],
            "temp_air": frame["temp_air"],
            "predicted_to_physical": to_physical["predicted_w"],
            # The irradiance sensor against the power meter, where the sky is clear.
            "measured_to_physical": to_physical["measured_w"].where(clear),
        },
        index=frame.index,
    )


def season_matched(reference: pd.DataFrame, window: pd.DatetimeIndex, days: int) -> pd.DataFrame:
    """Reference rows within ``days`` days of year of the window, in any year."""
    doy = pd.DatetimeIndex(reference.index).dayofyear.to_numpy()
    wanted = np.unique(pd.DatetimeIndex(window).dayofyear.to_numpy())
    # Circular distance in days of year, so a window in early January matches December.
    gap = np.abs(doy[:, None] - wanted[None, :])
    gap = np.minimum(gap, 366 - gap).min(axis=1)
    return reference[gap <= days]


def monitor(
    recent: pd.DataFrame,
    reference: pd.DataFrame,
    promised_nrmse: float,
    site: Site | None = None,
    config: DriftConfig | None = None,
    builder: FeatureBuilder | None = None,
    before: pd.DataFrame | None = None,
) -> DriftResult:
    """Judge a window of live traffic (``recent``) against the training years
    (``reference``, the store's shape too, e.g. from ``training_reference``).

    ``promised_nrmse`` is the backtest's nRMSE (a fraction of capacity). ``before``, the
    store's rows of the days before the window (optional, may be empty), only shapes a loss: how the
    plant's delivered share moved over the last ``config.shape_days`` days.
    """
    config = config or DriftConfig()
    builder = builder or FeatureBuilder(site or Site())
    site = builder.site
    validate(recent, "recent window")
    validate(reference, "reference")
    if not np.isfinite(promised_nrmse) or promised_nrmse <= 0:
        raise DriftInputError(f"promised nRMSE must be a positive fraction, got {promised_nrmse}")

    current = monitoring_features(recent, builder, config)
    day = current[current["daytime"]]
    matched = season_matched(reference, pd.DatetimeIndex(recent.index), config.season_days)
    past = monitoring_features(matched, builder, config)
    past = past[past["daytime"]]

    scores, drifted, html, data_note = _data_drift(day, past, config)
    offset, offset_note = _time_offset(current["physical_w"], recent["measured_w"], config)
    performance = _performance(recent.loc[day.index], site, promised_nrmse, config)
    shaped = (
        recent
        if before is None or before.empty
        else pd.concat([_days_before(before, recent, config), recent])
    )
    problems = {**offset_note, **performance.problems}
    if offset_note:
        timing = f"data drift in the timing: {offset_note['time_offset']}"
        data_note = f"{data_note}; {timing}" if drifted else timing
    index = pd.DatetimeIndex(recent.index)
    return DriftResult(
        window_start=index.min(),
        window_end=index.max(),
        day_rows=len(day),
        night_rows=len(current) - len(day),
        actual_rows=performance.rows,
        scores=scores,
        drifted=drifted,
        data_drift=bool(drifted or offset_note),
        nrmse=performance.nrmse,
        peak_ratio=performance.peak_ratio,
        performance_drift=bool(performance.problems),
        reason=f"{data_note}; {performance.note}",
        report_html=html,
        surplus_ratio=performance.surplus_ratio,
        clipped_rows=performance.clipped_rows,
        time_offset_min=offset,
        diagnosis=diagnose(problems, drifted, _daily_ratio(shaped, site, config)),
    )


def _time_offset(
    physical_w: pd.Series, measured_w: pd.Series, config: DriftConfig
) -> tuple[float, dict[str, str]]:
    """The weather's clock against the power meter's: minutes, and a problem when a
    shift lines them up clearly better than the stamps do."""
    shift, best, stamped = time_offset(
        physical_w, measured_w, config.max_time_offset, config.min_actual_rows
    )
    if pd.isna(shift):
        return float("nan"), {}
    minutes = shift / pd.Timedelta(minutes=1)
    if minutes == 0 or best - stamped < config.min_offset_gain:
        return minutes, {}
    late = "later" if minutes > 0 else "earlier"
    return minutes, {
        "time_offset": (
            f"measured power lines up with physics from weather stamped {abs(minutes):.0f} "
            f"min {late} (correlation {best:.3f} against {stamped:.3f} as stamped, alarm "
            f"from a gain of {config.min_offset_gain}): a clock is off"
        )
    }


def _data_drift(
    day: pd.DataFrame, past: pd.DataFrame, config: DriftConfig
) -> tuple[dict[str, float], list[str], str, str]:
    """Evidently's score for every ratio with enough rows on both sides."""
    columns = [
        c
        for c in config.thresholds
        if day[c].notna().sum() >= config.min_day_rows
        and past[c].notna().sum() >= config.min_day_rows
    ]
    if len(day) < config.min_day_rows:
        return (
            {},
            [],
            "",
            (
                f"data drift: not enough data ({len(day)} daytime rows, "
                f"{config.min_day_rows} needed)"
            ),
        )
    if not columns:
        return {}, [], "", "data drift: not enough data (no ratio has enough rows)"
    metrics = [
        ValueDrift(column=c, method=DRIFT_METHOD, threshold=config.thresholds[c]) for c in columns
    ]
    # Plain row numbers: Evidently has no use for the time index and warns about it.
    snapshot = Report(metrics).run(
        day[columns].reset_index(drop=True), past[columns].reset_index(drop=True)
    )
    values = [m["value"] for m in snapshot.dict()["metrics"]]
    scores = {c: float(v) for c, v in zip(columns, values, strict=True)}
    drifted = [c for c in columns if scores[c] >= config.thresholds[c]]
    skipped = sorted(set(config.thresholds) - set(columns))
    note = (
        "data drift in "
        + ", ".join(f"{c} ({scores[c]:.2f} >= {config.thresholds[c]})" for c in drifted)
        if drifted
        else "no data drift"
    )
    if skipped:
        note += f" (not enough rows for {', '.join(skipped)})"
    return scores, drifted, snapshot.get_html_str(as_iframe=False), note


@dataclass(frozen=True)
class _Performance:
    rows: int
    nrmse: float
    peak_ratio: float
    surplus_ratio: float
    clipped_rows: int
    problems: dict[str, str]
    note: str


def _performance(
    day: pd.DataFrame, site: Site, promised: float, config: DriftConfig
) -> _Performance:
    known = day[day["measured_w"].notna()]
    if len(known) < config.min_actual_rows:
        return _Performance(
            len(known), float("nan"), float("nan"), float("nan"), 0, {},
            f"performance: not enough data ({len(known)} daytime rows with actuals, "
            f"{config.min_actual_rows} needed)",
        )  # fmt: skip
    error = nrmse(known["predicted_w"], known["measured_w"], site.capacity_w)
    limit = promised * config.nrmse_tolerance
    peak_ratio = _delivered_share(known, config.peak_share * site.capacity_w, config)
    surplus_ratio = _delivered_share(known, config.surplus_share * site.capacity_w, config)
    ceiling = float(known["measured_w"].max())
    clipped = (
        int(
            (
                (known["measured_w"] >= ceiling - config.clip_tolerance * site.capacity_w)
                & (known["predicted_w"] > ceiling)
            ).sum()
        )
        if ceiling >= config.min_ceiling_share * site.capacity_w
        else 0
    )
    problems = {}
    if error > limit:
        problems["nrmse"] = f"nRMSE {error:.1%} above {limit:.1%} (promised {promised:.1%})"
    if peak_ratio < config.min_peak_ratio:
        problems["peak"] = (
            f"the plant delivers {peak_ratio:.0%} of the forecast where the model expects "
            f">= {config.peak_share:.0%} of capacity (alarm below {config.min_peak_ratio:.0%})"
        )
    if surplus_ratio > config.max_surplus_ratio:
        problems["surplus"] = (
            f"the plant delivers {surplus_ratio:.0%} of the forecast where the model expects "
            f">= {config.surplus_share:.0%} of capacity (alarm above "
            f"{config.max_surplus_ratio:.0%}): the irradiance reading is likely too low"
        )
    if clipped >= config.min_clipped_rows:
        problems["clipping"] = (
            f"measured power sits at a ceiling of {ceiling:.0f} W on {clipped} rows where the "
            f"model expects more (alarm from {config.min_clipped_rows}): an inverter limit"
        )
    note = (
        "performance drift: " + "; ".join(problems.values())
        if problems
        else f"no performance drift (nRMSE {error:.1%}, limit {limit:.1%})"
    )
    return _Performance(len(known), error, peak_ratio, surplus_ratio, clipped, problems, note)


def _days_before(before: pd.DataFrame, recent: pd.DataFrame, config: DriftConfig) -> pd.DataFrame:
    """The rows of ``before`` in the ``shape_days`` up to the window's start."""
    validate(before, "the days before the window")
    start = pd.DatetimeIndex(recent.index).min()
    since = start - (pd.Timedelta(days=config.shape_days) - config.window)
    index = pd.DatetimeIndex(before.index)
    return before[(index >= since) & (index < start)]


def _daily_ratio(rows: pd.DataFrame, site: Site, config: DriftConfig) -> pd.Series:
    """The plant's share of the forecast day by day (median of measured over forecast
    where the forecast is high enough to judge), for the shape of a loss."""
    high = rows[
        rows["measured_w"].notna() & (rows["predicted_w"] >= config.surplus_share * site.capacity_w)
    ]
    by_day = (high["measured_w"] / high["predicted_w"]).groupby(high.index.date)
    return by_day.median()[by_day.size() >= config.min_rows_per_day]


def _delivered_share(known: pd.DataFrame, min_forecast_w: float, config: DriftConfig) -> float:
    """Median of measured over forecast power where the forecast is at least
    ``min_forecast_w``; NaN (not enough data) under ``min_peak_rows`` such rows."""
    rows = known[known["predicted_w"] >= min_forecast_w]
    if len(rows) < config.min_peak_rows:
        return float("nan")
    return float((rows["measured_w"] / rows["predicted_w"]).median())


def validate(frame: pd.DataFrame, what: str) -> None:
    """Raise ``DriftInputError`` naming what is wrong with a store-shaped frame."""
    if not isinstance(frame, pd.DataFrame):
        raise DriftInputError(f"{what} must be a DataFrame, got {type(frame).__name__}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DriftInputError(
            f"{what} lacks column(s) {missing}; it needs {list(COLUMNS)} "
            f"(measured_w may be NaN), has {list(frame.columns)}"
        )
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DriftInputError(f"{what} must be indexed by time, got {type(frame.index).__name__}")
    if frame.index.tz is None:
        raise DriftInputError(
            f"{what} has naive timestamps: localise them (the store keeps UTC), "
            "e.g. frame.tz_localize('UTC')"
        )
    if frame.empty:
        raise DriftInputError(f"{what} has no rows")
    if frame.index.has_duplicates:
        raise DriftInputError(f"{what} has repeated timestamps")

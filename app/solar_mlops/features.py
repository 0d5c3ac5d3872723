"""Physics features from timestamp + weather, with pvlib.

The one feature definition shared by training and serving: clients send a timestamp,
GHI and air temperature; everything else is derived here. Per-site constants (the
Linke turbidity climatology, pressure at the site's altitude) are computed once when a
``FeatureBuilder`` is created, never per call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
import pvlib

from solar_mlops.data import WEATHER_COLUMNS, validate_weather
from solar_mlops.errors import DataValidationError, SchemaMismatchError
from solar_mlops.site import Site

# Bump when a feature's computation changes meaning; it feeds the schema hash.
FEATURE_VERSION = 1


# Weather at neighbouring grid times, from the same batch: a forecast arrives as a
# series, and the neighbours tell a passing cloud from an overcast half hour.
CONTEXT_STEP = pd.Timedelta("30min")
CONTEXT_STEPS = (1, 2)


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    description: str


PHYSICS_FEATURES: tuple[Feature, ...] = (
    Feature("ghi", "W/m2", "global horizontal irradiance (input)"),
    Feature("temp_air", "degC", "air temperature (input)"),
    Feature("solar_zenith", "deg", "solar zenith angle"),
    Feature("solar_elevation", "deg", "solar elevation angle"),
    Feature("solar_azimuth", "deg", "solar azimuth, clockwise from north"),
    Feature("airmass_absolute", "1", "pressure-corrected air mass"),
    Feature("ghi_clear", "W/m2", "Ineichen clear-sky GHI"),
    Feature("dni_clear", "W/m2", "Ineichen clear-sky DNI"),
    Feature("clearsky_index", "1", "GHI over clear-sky GHI, 0 in twilight"),
    Feature("dni", "W/m2", "direct normal irradiance, Erbs decomposition"),
    Feature("dhi", "W/m2", "diffuse horizontal irradiance, Erbs decomposition"),
    Feature("aoi", "deg", "angle of incidence on the array"),
    Feature("poa_global", "W/m2", "plane-of-array irradiance, Hay-Davies"),
    Feature("poa_direct", "W/m2", "plane-of-array beam irradiance"),
    Feature("poa_diffuse", "W/m2", "plane-of-array sky and ground diffuse"),
    Feature("poa_global_clear", "W/m2", "plane-of-array irradiance under clear sky"),
    Feature("temp_cell", "degC", "cell temperature, Faiman model"),
    Feature("pvwatts_ac_pu", "1", "PVWatts AC output per unit of DC nameplate"),
    Feature("hour_sin", "1", "time of day, sine"),
    Feature("hour_cos", "1", "time of day, cosine"),
    Feature("doy_sin", "1", "day of year, sine"),
    Feature("doy_cos", "1", "day of year, cosine"),
)
CONTEXT_FEATURES: tuple[Feature, ...] = tuple(
    Feature(f"{base}_{side}{step}", unit, f"{base} {step * 30} min {word}; NaN if not sent")
    for base, unit in (("ghi", "W/m2"), ("clearsky_index", "1"))
    for step in CONTEXT_STEPS
    for side, word in (("m", "earlier"), ("p", "later"))
)
FEATURES = PHYSICS_FEATURES + CONTEXT_FEATURES
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CONTEXT_NAMES: tuple[str, ...] = tuple(f.name for f in CONTEXT_FEATURES)

# Below this clear-sky GHI the sun is too low for a ratio to mean anything.
_MIN_GHI_CLEAR = 10.0
_MAX_CLEARSKY_INDEX = 2.0


def schema() -> dict[str, object]:
    """The feature schema as stored with every model version."""
    return {
        "version": FEATURE_VERSION,
        "inputs": list(WEATHER_COLUMNS),
        "context_step": str(CONTEXT_STEP),
        "features": [{"name": f.name, "unit": f.unit, "dtype": "float64"} for f in FEATURES],
    }


def schema_hash() -> str:
    """A short, stable fingerprint of ``schema()``: equal hashes mean compatible models."""
    blob = json.dumps(schema(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_schema(model_hash: str, what: str = "model") -> None:
    """Refuse a model whose features the running code does not produce."""
    if model_hash != schema_hash():
        raise SchemaMismatchError(
            f"{what} was trained on feature schema {model_hash}, but this code builds "
            f"schema {schema_hash()} (feature version {FEATURE_VERSION}). Retrain the "
            "model with this code, or run the code version the model was trained with."
        )


# Time-only quantities: they depend on the timestamp and the site, never on weather.
_SUN = ("zenith", "azimuth", "doy", "local_hours", "dni_extra", "airmass",
        "ghi_clear", "dni_clear", "poa_global_clear", "aoi", "projection_ratio")  # fmt: skip


class FeatureBuilder:
    """Computes ``FEATURES`` for one site. Create once; call for every batch.

    ``compute`` is the numpy core that training and serving share; ``build`` wraps it
    for DataFrames. pvlib's numpy-level functions are used throughout: its pandas
    entry points cost milliseconds per call whatever the batch size.

    With ``sun_cache_rows`` > 0 the time-only part (solar geometry, clear sky) is kept
    per timestamp: a forecast service is asked about the same upcoming half hours over
    and over. Cached or not, every value is computed by the same code, element by
    element, so the features are identical either way.
    """

    def __init__(self, site: Site | None = None, sun_cache_rows: int = 0) -> None:
        self.site = site or Site()
        self._pressure = float(pvlib.atmosphere.alt2pres(self.site.altitude_m))
        # Daily Linke turbidity for a leap year, indexed by day of year - 1.
        days = pd.date_range("2012-01-01", "2012-12-31", freq="D", tz="UTC")
        self._linke_by_doy = pvlib.clearsky.lookup_linke_turbidity(
            days, self.site.latitude, self.site.longitude
        ).to_numpy()
        self._utc_offset_s = _fixed_utc_offset(self.site.timezone)
        self._latitude_rad = np.radians(self.site.latitude)
        self._sun_cache: dict[int, np.ndarray] = {}
        self._sun_cache_rows = sun_cache_rows

    def build(self, weather: pd.DataFrame) -> pd.DataFrame:
        """Features for each row of ``weather`` (tz-aware index; columns ghi, temp_air)."""
        validate_weather(weather)
        index = pd.DatetimeIndex(weather.index)
        values = self.compute(
            epoch_seconds(index),
            weather["ghi"].to_numpy(dtype="float64"),
            weather["temp_air"].to_numpy(dtype="float64"),
        )
        return pd.DataFrame(values, index=weather.index, columns=list(FEATURE_NAMES))

    def compute(self, epoch_s: np.ndarray, ghi: np.ndarray, temp_air: np.ndarray) -> np.ndarray:
        """Features of one series: an (n, len(FEATURES)) float64 array, columns in
        ``FEATURE_NAMES`` order. ``epoch_s`` holds POSIX seconds (UTC)."""
        features = self.physics(epoch_s, ghi, temp_air)
        add_context(features, epoch_s)
        return features

    def physics(self, epoch_s: np.ndarray, ghi: np.ndarray, temp_air: np.ndarray) -> np.ndarray:
        """The same array with only the per-row physics filled (context columns NaN).

        Rows are independent here, so rows of several series can be computed in one
        call and each series given its context afterwards with ``add_context``.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            sun = dict(zip(_SUN, self._sun_rows(epoch_s).T, strict=True))
            physics = self._physics(sun, ghi, temp_air)
        out = np.full((len(epoch_s), len(FEATURE_NAMES)), np.nan)  # context NaN until added
        for j, feature in enumerate(PHYSICS_FEATURES):
            out[:, j] = physics[feature.name]
        return out

    def _sun_rows(self, epoch_s: np.ndarray) -> np.ndarray:
        """The time-only quantities, (n, len(_SUN)), from the cache where possible."""
        if self._sun_cache_rows == 0:
            return self._sun(epoch_s)
        keys = epoch_s.tolist()
        rows = [self._sun_cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            fresh = self._sun(epoch_s[missing])
            for position, i in enumerate(missing):
                rows[i] = fresh[position]
                self._sun_cache[keys[i]] = fresh[position]
            # Oldest first out: dicts keep insertion order.
            overflow = len(self._sun_cache) - self._sun_cache_rows
            for stale in list(itertools.islice(self._sun_cache, max(overflow, 0))):
                del self._sun_cache[stale]
        return np.vstack(cast(list[np.ndarray], rows))  # every None was filled above

    def _sun(self, epoch_s: np.ndarray) -> np.ndarray:
        site = self.site
        local_s = epoch_s + self._utc_offset_s
        doy = (local_s // _DAY) - _days_to_year_start(local_s // _DAY) + 1
        local_hours = (local_s % _DAY) / 3600.0
        utc_hours = (epoch_s % _DAY) / 3600.0

        declination = pvlib.solarposition.declination_spencer71(doy)
        equation_of_time = pvlib.solarposition.equation_of_time_spencer71(doy)  # minutes
        hour_angle = np.radians((utc_hours - 12.0) * 15.0 + site.longitude + equation_of_time / 4)
        zenith_rad = pvlib.solarposition.solar_zenith_analytical(
            self._latitude_rad, hour_angle, declination
        )
        azimuth = np.degrees(
            pvlib.solarposition.solar_azimuth_analytical(
                self._latitude_rad, hour_angle, declination, zenith_rad
            )
        )
        zenith = np.degrees(zenith_rad)
        dni_extra = pvlib.irradiance.get_extra_radiation(doy)
        airmass = _zero_nan(
            pvlib.atmosphere.get_absolute_airmass(
                pvlib.atmosphere.get_relative_airmass(zenith), self._pressure
            )
        )
        clear = pvlib.clearsky.ineichen(
            zenith, airmass, self._linke_by_doy[doy - 1], site.altitude_m, dni_extra
        )
        ghi_clear, dni_clear, dhi_clear = (_zero_nan(clear[k]) for k in ("ghi", "dni", "dhi"))
        aoi = pvlib.irradiance.aoi(site.surface_tilt, site.surface_azimuth, zenith, azimuth)
        # Beam on the tilted plane over beam on the horizontal, as Hay-Davies needs it.
        projection = pvlib.irradiance.aoi_projection(
            site.surface_tilt, site.surface_azimuth, zenith, azimuth
        )
        projection_ratio = np.maximum(projection, 0) / np.maximum(np.cos(zenith_rad), 0.01745)
        poa_clear = self._poa(aoi, projection_ratio, dni_clear, ghi_clear, dhi_clear, dni_extra)
        return np.column_stack(
            [zenith, azimuth, doy, local_hours, dni_extra, airmass, ghi_clear, dni_clear,
             poa_clear["poa_global"], aoi, projection_ratio]
        )  # fmt: skip

    def _physics(
        self, sun: dict[str, np.ndarray], ghi: np.ndarray, temp_air: np.ndarray
    ) -> dict[str, np.ndarray]:
        site = self.site
        zenith, azimuth, ghi_clear = sun["zenith"], sun["azimuth"], sun["ghi_clear"]
        doy = sun["doy"].astype(np.int64)
        clearsky_index = np.where(
            ghi_clear > _MIN_GHI_CLEAR,
            np.minimum(ghi / np.maximum(ghi_clear, _MIN_GHI_CLEAR), _MAX_CLEARSKY_INDEX),
            0.0,
        )
        split = pvlib.irradiance.erbs(ghi, zenith, doy)
        dni, dhi = _zero_nan(split["dni"]), _zero_nan(split["dhi"])
        poa = self._poa(sun["aoi"], sun["projection_ratio"], dni, ghi, dhi, sun["dni_extra"])
        temp_cell = pvlib.temperature.faiman(poa["poa_global"], temp_air)
        pdc_pu = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], temp_cell, 1.0, site.gamma_pdc)
        pac_pu = _zero_nan(pvlib.inverter.pvwatts(pdc_pu, 1.0))
        local_hours = sun["local_hours"]
        return {
            "ghi": ghi,
            "temp_air": temp_air,
            "solar_zenith": zenith,
            "solar_elevation": 90.0 - zenith,
            "solar_azimuth": azimuth,
            "airmass_absolute": sun["airmass"],
            "ghi_clear": ghi_clear,
            "dni_clear": sun["dni_clear"],
            "clearsky_index": clearsky_index,
            "dni": dni,
            "dhi": dhi,
            "aoi": sun["aoi"],
            "poa_global": poa["poa_global"],
            "poa_direct": poa["poa_direct"],
            "poa_diffuse": poa["poa_diffuse"],
            "poa_global_clear": sun["poa_global_clear"],
            "temp_cell": temp_cell,
            "pvwatts_ac_pu": np.maximum(pac_pu, 0.0),
            "hour_sin": np.sin(2 * np.pi * local_hours / 24.0),
            "hour_cos": np.cos(2 * np.pi * local_hours / 24.0),
            "doy_sin": np.sin(2 * np.pi * doy / 365.25),
            "doy_cos": np.cos(2 * np.pi * doy / 365.25),
        }

    def _poa(
        self,
        aoi: np.ndarray,
        projection_ratio: np.ndarray,
        dni: np.ndarray,
        ghi: np.ndarray,
        dhi: np.ndarray,
        dni_extra: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Hay-Davies plane-of-array irradiance from pvlib's parts, with the geometry
        (angle of incidence, projection ratio) computed once per timestamp."""
        tilt = self.site.surface_tilt
        sky = pvlib.irradiance.haydavies(
            tilt, self.site.surface_azimuth, dhi, dni, dni_extra,
            projection_ratio=projection_ratio,
        )  # fmt: skip
        ground = pvlib.irradiance.get_ground_diffuse(tilt, ghi)
        parts = pvlib.irradiance.poa_components(aoi, dni, sky, ground)
        return {key: np.maximum(_zero_nan(parts[key]), 0.0)
                for key in ("poa_global", "poa_direct", "poa_diffuse")}  # fmt: skip


_DAY = 86_400


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """NaN (pvlib's answer below the horizon) as 0; cheaper than np.nan_to_num."""
    values = np.asarray(values, dtype="float64")
    return np.where(np.isnan(values), 0.0, values)


def epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """POSIX seconds of a timezone-aware index, whatever its resolution."""
    return index.as_unit("ns").asi8 // 1_000_000_000


def _days_to_year_start(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of January 1st of the year containing each day."""
    years = days.astype("datetime64[D]").astype("datetime64[Y]")
    return years.astype("datetime64[D]").astype(np.int64)


def _fixed_utc_offset(timezone: str) -> int:
    """The site clock's offset from UTC in seconds; it must not observe DST."""
    winter, summer = (pd.Timestamp(f"2013-{m}-01", tz=timezone).utcoffset() for m in (1, 7))
    if winter != summer or winter is None:
        raise ValueError(f"site timezone {timezone} observes DST; use its standard-time zone")
    return int(winter.total_seconds())


_GHI = FEATURE_NAMES.index("ghi")
_CLEARSKY_INDEX = FEATURE_NAMES.index("clearsky_index")
_FIRST_CONTEXT = len(PHYSICS_FEATURES)


def add_context(features: np.ndarray, epoch_s: np.ndarray) -> None:
    """Fill, in place, each row's neighbours in time from the same series
    (``CONTEXT_FEATURES`` order); NaN where the neighbour is not in the series."""
    if len(epoch_s) < 2:
        return  # a lone row has no neighbours: its context stays NaN
    if np.unique(epoch_s).size != epoch_s.size:
        raise DataValidationError("timestamps must be unique to build time-context features")
    order = np.argsort(epoch_s)
    ordered = epoch_s[order]
    step = int(CONTEXT_STEP.total_seconds())
    offsets = np.array([sign * k * step for k in CONTEXT_STEPS for sign in (-1, 1)])
    wanted = epoch_s[:, None] + offsets[None, :]
    position = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    found = ordered[position] == wanted
    source = order[position]
    for block, column in enumerate((_GHI, _CLEARSKY_INDEX)):
        start = _FIRST_CONTEXT + block * len(offsets)
        features[:, start : start + len(offsets)] = np.where(
            found, features[source, column], np.nan
        )

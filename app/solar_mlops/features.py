"""Physics features from timestamp + weather, with pvlib.

The one feature definition shared by training and serving: clients send a timestamp,
GHI and air temperature; everything else is derived here. Per-site constants (the
Linke turbidity climatology, pressure at the site's altitude) are computed once when a
``FeatureBuilder`` is created, never per call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

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
    Feature("solar_zenith", "deg", "apparent solar zenith angle"),
    Feature("solar_elevation", "deg", "apparent solar elevation angle"),
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


class FeatureBuilder:
    """Computes ``FEATURES`` for one site. Create once; call for every batch."""

    def __init__(self, site: Site | None = None) -> None:
        self.site = site or Site()
        self._pressure = float(pvlib.atmosphere.alt2pres(self.site.altitude_m))
        # Daily Linke turbidity for a leap year, indexed by day of year - 1.
        days = pd.date_range("2012-01-01", "2012-12-31", freq="D", tz="UTC")
        self._linke_by_doy = pvlib.clearsky.lookup_linke_turbidity(
            days, self.site.latitude, self.site.longitude
        ).to_numpy()

    def build(self, weather: pd.DataFrame) -> pd.DataFrame:
        """Features for each row of ``weather`` (tz-aware index; columns ghi, temp_air)."""
        validate_weather(weather)
        with np.errstate(divide="ignore", invalid="ignore"):
            return add_context(self._physics(weather))[list(FEATURE_NAMES)]

    def _physics(self, weather: pd.DataFrame) -> pd.DataFrame:
        times = pd.DatetimeIndex(weather.index).tz_convert(self.site.timezone)
        ghi = weather["ghi"].to_numpy(dtype="float64")
        temp_air = weather["temp_air"].to_numpy(dtype="float64")
        site = self.site

        position = pvlib.solarposition.get_solarposition(
            times,
            site.latitude,
            site.longitude,
            altitude=site.altitude_m,
            pressure=self._pressure,
            temperature=temp_air,
            method="nrel_numpy",
        )
        zenith = position["apparent_zenith"].to_numpy()
        azimuth = position["azimuth"].to_numpy()
        doy = times.dayofyear.to_numpy()
        dni_extra = pvlib.irradiance.get_extra_radiation(doy)

        airmass = pvlib.atmosphere.get_absolute_airmass(
            pvlib.atmosphere.get_relative_airmass(zenith), self._pressure
        )
        clear = pvlib.clearsky.ineichen(
            zenith,
            airmass,
            self._linke_by_doy[doy - 1],
            altitude=site.altitude_m,
            dni_extra=dni_extra,
        )
        ghi_clear = np.nan_to_num(np.asarray(clear["ghi"], dtype="float64"))
        dni_clear = np.nan_to_num(np.asarray(clear["dni"], dtype="float64"))
        dhi_clear = np.nan_to_num(np.asarray(clear["dhi"], dtype="float64"))
        clearsky_index = np.where(
            ghi_clear > _MIN_GHI_CLEAR,
            np.clip(ghi / np.maximum(ghi_clear, _MIN_GHI_CLEAR), 0.0, _MAX_CLEARSKY_INDEX),
            0.0,
        )

        split = pvlib.irradiance.erbs(ghi, zenith, doy)
        dni = np.nan_to_num(np.asarray(split["dni"], dtype="float64"))
        dhi = np.nan_to_num(np.asarray(split["dhi"], dtype="float64"))

        poa = self._poa(zenith, azimuth, dni, ghi, dhi, dni_extra)
        poa_clear = self._poa(zenith, azimuth, dni_clear, ghi_clear, dhi_clear, dni_extra)
        aoi = pvlib.irradiance.aoi(site.surface_tilt, site.surface_azimuth, zenith, azimuth)

        temp_cell = pvlib.temperature.faiman(poa["poa_global"], temp_air)
        pdc_pu = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], temp_cell, 1.0, site.gamma_pdc)
        pac_pu = pvlib.inverter.pvwatts(pdc_pu, 1.0)

        hours = times.hour.to_numpy() + times.minute.to_numpy() / 60.0
        columns = {
            "ghi": ghi,
            "temp_air": temp_air,
            "solar_zenith": zenith,
            "solar_elevation": 90.0 - zenith,
            "solar_azimuth": azimuth,
            "airmass_absolute": np.nan_to_num(np.asarray(airmass, dtype="float64")),
            "ghi_clear": ghi_clear,
            "dni_clear": dni_clear,
            "clearsky_index": clearsky_index,
            "dni": dni,
            "dhi": dhi,
            "aoi": np.asarray(aoi, dtype="float64"),
            "poa_global": poa["poa_global"],
            "poa_direct": poa["poa_direct"],
            "poa_diffuse": poa["poa_diffuse"],
            "poa_global_clear": poa_clear["poa_global"],
            "temp_cell": np.asarray(temp_cell, dtype="float64"),
            "pvwatts_ac_pu": np.clip(np.nan_to_num(np.asarray(pac_pu, dtype="float64")), 0, None),
            "hour_sin": np.sin(2 * np.pi * hours / 24.0),
            "hour_cos": np.cos(2 * np.pi * hours / 24.0),
            "doy_sin": np.sin(2 * np.pi * doy / 365.25),
            "doy_cos": np.cos(2 * np.pi * doy / 365.25),
        }
        return pd.DataFrame(columns, index=weather.index)

    def _poa(
        self,
        zenith: np.ndarray,
        azimuth: np.ndarray,
        dni: np.ndarray,
        ghi: np.ndarray,
        dhi: np.ndarray,
        dni_extra: np.ndarray,
    ) -> dict[str, np.ndarray]:
        total = pvlib.irradiance.get_total_irradiance(
            self.site.surface_tilt,
            self.site.surface_azimuth,
            zenith,
            azimuth,
            dni,
            ghi,
            dhi,
            dni_extra=dni_extra,
            model="haydavies",
        )
        return {
            key: np.clip(np.nan_to_num(np.asarray(total[key], dtype="float64")), 0, None)
            for key in ("poa_global", "poa_direct", "poa_diffuse")
        }


def add_context(frame: pd.DataFrame) -> pd.DataFrame:
    """Add each row's neighbours in time (``CONTEXT_STEPS`` grid steps either side).

    A neighbour absent from the frame is NaN: the model was trained to do without.
    """
    if frame.index.has_duplicates:
        raise DataValidationError("timestamps must be unique to build time-context features")
    for base in ("ghi", "clearsky_index"):
        series = frame[base]
        for step in CONTEXT_STEPS:
            offset = step * CONTEXT_STEP
            frame[f"{base}_m{step}"] = series.reindex(frame.index - offset).to_numpy()
            frame[f"{base}_p{step}"] = series.reindex(frame.index + offset).to_numpy()
    return frame

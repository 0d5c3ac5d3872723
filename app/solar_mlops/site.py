"""The PV plant the model forecasts: PVDAQ system 50, Golden, Colorado."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Site:
    """Fixed facts about one plant. Everything per-site that physics needs lives here."""

    name: str = "pvdaq-system-50"
    latitude: float = 39.7406
    longitude: float = -105.1775
    altitude_m: float = 1800.0
    # The data's clock: local standard time. Solar physics never sees DST.
    timezone: str = "Etc/GMT+7"
    surface_tilt: float = 45.0
    surface_azimuth: float = 158.0
    # The nameplate is not shipped with the data. 3.15 kW is the 99.9th percentile
    # of measured AC output over the 2011-2012 training years; metrics are normalised
    # by it so that every model version is judged on the same scale.
    capacity_w: float = 3150.0
    # PVWatts DC temperature coefficient for crystalline silicon (1/degC).
    gamma_pdc: float = -0.0037

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


SYSTEM_50 = Site()

"""Features: the schema contract, physics sanity, and time context from the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame

from solar_mlops import features
from solar_mlops.errors import DataValidationError, SchemaMismatchError
from solar_mlops.features import CONTEXT_NAMES, FEATURE_NAMES, FeatureBuilder


@pytest.fixture(scope="module")
def builder() -> FeatureBuilder:
    return FeatureBuilder()


def test_columns_follow_the_schema(builder: FeatureBuilder) -> None:
    built = builder.build(weather_frame())
    assert tuple(built.columns) == FEATURE_NAMES
    assert [f["name"] for f in features.schema()["features"]] == list(FEATURE_NAMES)
    assert (built.dtypes == "float64").all()


def test_schema_hash_is_stable_and_tracks_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    first = features.schema_hash()
    assert first == features.schema_hash() and len(first) == 16
    monkeypatch.setattr(features, "FEATURE_VERSION", features.FEATURE_VERSION + 1)
    assert features.schema_hash() != first


def test_check_schema_names_both_hashes() -> None:
    features.check_schema(features.schema_hash())
    with pytest.raises(SchemaMismatchError, match="schema 0000000000000000, but this code"):
        features.check_schema("0000000000000000", "solar-power v3")


def test_night_has_no_irradiance_and_day_has_plane_of_array(builder: FeatureBuilder) -> None:
    built = builder.build(weather_frame())
    night = built[built["solar_elevation"] < -5]
    day = built[(built["solar_elevation"] > 30)]
    assert not night.empty and not day.empty
    assert (night[["ghi_clear", "poa_global", "pvwatts_ac_pu"]] == 0).all().all()
    assert (day["poa_global"] > 0).all() and (day["pvwatts_ac_pu"] > 0).all()
    # Decomposition conserves energy: beam on the horizontal plus diffuse is GHI.
    zenith = np.radians(day["solar_zenith"])
    assert np.allclose(day["dni"] * np.cos(zenith) + day["dhi"], day["ghi"], rtol=1e-6, atol=1)


def test_summer_noon_is_physically_plausible(builder: FeatureBuilder) -> None:
    noon = builder.build(weather_frame(start="2013-06-21 12:00", periods=1, ghi=900.0))
    row = noon.iloc[0]
    assert 70 < row["solar_elevation"] < 75  # Golden, CO at the June solstice
    assert 900 < row["ghi_clear"] < 1150
    assert row["temp_cell"] > row["temp_air"]
    assert 0.5 < row["pvwatts_ac_pu"] < 1.0


def test_a_single_row_has_no_context_and_equal_physics(builder: FeatureBuilder) -> None:
    series = weather_frame(start="2013-06-21 06:00", periods=12)
    batch = builder.build(series)
    alone = builder.build(series.iloc[[5]])
    assert alone[list(CONTEXT_NAMES)].isna().all().all()
    physics = [n for n in FEATURE_NAMES if n not in CONTEXT_NAMES]
    pd.testing.assert_frame_equal(alone[physics], batch.iloc[[5]][physics])
    assert batch.iloc[5]["ghi_m1"] == series["ghi"].iloc[4]
    assert batch.iloc[5]["ghi_p2"] == series["ghi"].iloc[7]


def test_context_ignores_row_order(builder: FeatureBuilder) -> None:
    series = weather_frame(periods=10)
    shuffled = series.iloc[[3, 0, 9, 1, 5, 2, 8, 4, 7, 6]]
    pd.testing.assert_frame_equal(
        builder.build(shuffled).sort_index(), builder.build(series), check_freq=False
    )


def test_duplicate_timestamps_are_refused(builder: FeatureBuilder) -> None:
    series = weather_frame(periods=3)
    with pytest.raises(DataValidationError, match="timestamps must be unique"):
        builder.build(pd.concat([series, series.iloc[[0]]]))


def test_other_timezones_mean_the_same_instant(builder: FeatureBuilder) -> None:
    local = weather_frame(periods=6, start="2013-03-01 10:00")
    utc = local.tz_convert("UTC")
    pd.testing.assert_frame_equal(builder.build(utc).set_index(local.index), builder.build(local))

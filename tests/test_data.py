"""The data package: loading, the DST fix, alignment, and expectations on the frames."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solar_mlops import data
from solar_mlops.errors import DataPackageMissingError, DataValidationError
from solar_mlops.site import Site
from solar_mlops.training import Prepared, TrainingConfig, prepare, train


def test_missing_data_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "pvanalytics" else real(name)
    )
    with pytest.raises(DataPackageMissingError, match="'pvanalytics' package is not installed"):
        data.data_dir()


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "power.parquet"
    broken.write_bytes(b"not a parquet file")
    with pytest.raises(DataValidationError, match=r"cannot read .*power\.parquet"):
        data.load_power(broken)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataPackageMissingError, match=r"gone\.parquet is missing"):
        data.load_weather(tmp_path / "gone.parquet")


def test_file_without_expected_columns(tmp_path: Path) -> None:
    path = tmp_path / "weather.parquet"
    pd.DataFrame({"index": pd.date_range("2013", periods=3, tz="UTC"), "ghi": 1.0}).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"lacks column\(s\) \['temp_air'\]"):
        data.load_weather(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "power.parquet"
    empty = pd.DataFrame({"measured_on": pd.DatetimeIndex([], tz="UTC"), "ac_power_2": []})
    empty.to_parquet(path)
    with pytest.raises(DataValidationError, match="power file has no rows"):
        data.load_power(path)


def test_weather_validation_errors() -> None:
    frame = pd.DataFrame({"ghi": [1.0], "temp_air": [2.0]}, index=pd.DatetimeIndex(["2013-01-01"]))
    with pytest.raises(DataValidationError, match="timezone-aware"):
        data.validate_weather(frame)
    with pytest.raises(DataValidationError, match="has no rows"):
        data.validate_weather(frame.iloc[:0])
    text = frame.tz_localize("UTC").assign(ghi="cloudy")
    with pytest.raises(DataValidationError, match="'ghi' has no numeric values"):
        data.validate_weather(text)


def test_power_is_relocalised_from_dst_clock_to_standard_time() -> None:
    power = data.load_power()
    assert str(power.index.tz) == "Etc/GMT+7"
    assert power.index.is_unique and power.index.is_monotonic_increasing
    # In July the logger's clock ran an hour ahead of standard time: after the fix,
    # output peaks before 13:00 standard time, as a south-south-east array must.
    july = power[power.index.month == 7]
    profile = july.groupby(july.index.hour + july.index.minute / 60).mean()
    assert 10.5 < float((profile * profile.index).sum() / profile.sum()) < 12.0


def test_dataset_expectations(prepared: Prepared) -> None:
    frame = prepared.frame
    assert list(frame.columns) == ["ghi", "temp_air", data.TARGET]
    steps = frame.index.to_series().diff().dropna()
    assert (steps == data.GRID).all(), "one regular 30-minute grid"
    assert frame.index[0].year == 2011 and frame.index[-1].year == 2013
    power = frame[data.TARGET].dropna()
    assert power.between(0, 1.2 * Site().capacity_w).all()
    assert frame["ghi"].between(0, 1500).all()
    # Most grid points have a measured target; the rest are counted as missing.
    assert frame[data.TARGET].notna().mean() > 0.95


def test_align_averages_three_samples_and_needs_two() -> None:
    times = pd.date_range("2013-06-01 11:45", periods=3, freq="15min", tz="Etc/GMT+7")
    power = pd.Series([100.0, 200.0, 300.0], index=times)
    weather = pd.DataFrame(
        {"ghi": [500.0, 600.0], "temp_air": [20.0, 21.0]},
        index=pd.DatetimeIndex([times[1], times[1] + pd.Timedelta("30min")]),
    )
    aligned = data.align(power, weather)
    assert aligned.loc[times[1], data.TARGET] == pytest.approx(200.0)
    # 12:30 sees only the 12:15 sample: too few, so its target is missing.
    assert len(aligned) == 1 or np.isnan(aligned[data.TARGET].iloc[1])


def test_align_without_overlap_fails_clearly() -> None:
    power = pd.Series([1.0], index=pd.DatetimeIndex(["2010-01-01"], tz="UTC"))
    weather = pd.DataFrame(
        {"ghi": [1.0], "temp_air": [1.0]}, index=pd.DatetimeIndex(["2013-01-01"], tz="UTC")
    )
    with pytest.raises(DataValidationError, match="do not overlap"):
        data.align(power, weather)


def test_time_window_mask_is_inclusive_of_end_day() -> None:
    index = pd.date_range("2012-12-31 23:30", periods=3, freq="30min", tz="Etc/GMT+7")
    mask = data.TimeWindow("2011-01-01", "2012-12-31").mask(index)
    assert mask.tolist() == [True, False, False]


def test_training_on_an_empty_frame_names_the_cause() -> None:
    empty = pd.DataFrame(
        {"ghi": [], "temp_air": [], data.TARGET: []}, index=pd.DatetimeIndex([], tz="UTC")
    )
    with pytest.raises(DataValidationError, match="weather frame has no rows"):
        prepare(frame=empty)


def test_a_window_without_data_names_the_window(prepared: Prepared) -> None:
    config = TrainingConfig(train=data.TimeWindow("2009-01-01", "2009-12-31"), tune=False)
    with pytest.raises(
        DataValidationError, match=r"training window 2009-01-01\.\.2009-12-31 has 0"
    ):
        train(config, prepared)

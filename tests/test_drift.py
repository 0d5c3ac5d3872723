"""The drift monitor on real 2013 weeks: quiet on a normal week, loud on a faulty sensor
or a capped inverter (faults applied as the replayer applies them), plain about too
little data, and its figures on a real Pushgateway."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from servers import pushgateway

from solar_mlops import drift, drift_metrics
from solar_mlops.data import TimeWindow
from solar_mlops.diagnosis import Cause, loss_shape
from solar_mlops.features import FeatureBuilder
from solar_mlops.ops.replay import Fault, traffic
from solar_mlops.predictor import PowerModel
from solar_mlops.training import Prepared

# The backtest's promise for the tuned defaults (docs/benchmarks.md, mean over 2013).
PROMISED = 0.1065
SUMMER = TimeWindow("2013-06-04", "2013-06-10")
AUTUMN = TimeWindow("2013-10-01", "2013-10-07")


@pytest.fixture(scope="module")
def builder(prepared: Prepared) -> FeatureBuilder:
    return FeatureBuilder(prepared.site)


@pytest.fixture(scope="module")
def reference(prepared: Prepared, model: PowerModel) -> pd.DataFrame:
    frame = prepared.frame
    return drift.training_reference(
        frame[TimeWindow("2011-01-01", "2012-12-31").mask(pd.DatetimeIndex(frame.index))], model
    )


LOW_GHI = Fault("irradiance-low", 0.8)
CAPPED = Fault("inverter-cap", 0.7)


def store_rows(
    prepared: Prepared, model: PowerModel, builder: FeatureBuilder, window: TimeWindow,
    *faults: Fault,
) -> pd.DataFrame:  # fmt: skip
    """A week as the prediction store holds it after a replay with ``faults``: the weather
    sent, the forecast served for it, and the measured power."""
    frame = prepared.frame[window.mask(pd.DatetimeIndex(prepared.frame.index))]
    sent = traffic(frame, faults, prepared.site)
    return sent.assign(predicted_w=model.predict(builder.build(sent[["ghi", "temp_air"]])))


def test_a_normal_week_raises_no_alarm(prepared, model, builder, reference) -> None:
    for window in (SUMMER, AUTUMN):
        result = drift.monitor(store_rows(prepared, model, builder, window), reference, PROMISED)
        assert not result.data_drift, result.reason
        assert not result.performance_drift, result.reason
        assert result.day_rows > 100 and result.night_rows > 100
        assert set(result.scores) == set(drift.DriftConfig().thresholds)
        assert 0.03 < result.nrmse < PROMISED
        config = drift.DriftConfig()
        assert 0.9 < result.surplus_ratio < config.max_surplus_ratio
        assert result.clipped_rows < config.min_clipped_rows
        assert "no data drift" in result.reason and "no performance drift" in result.reason
        assert "<html" in result.report_html.lower()
        assert result.time_offset_min == 0
        assert result.diagnosis.cause == Cause.NONE


def test_an_irradiance_sensor_reading_20_percent_low_is_data_drift(
    prepared, model, builder, reference
) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, LOW_GHI)
    result = drift.monitor(rows, reference, PROMISED)
    assert result.data_drift, result.reason
    assert "measured_to_physical" in result.drifted
    assert "data drift in measured_to_physical" in result.reason
    assert result.diagnosis.cause == Cause.IRRADIANCE_SENSOR and result.diagnosis.data_fault


def test_a_low_irradiance_reading_shows_as_the_plant_beating_its_forecast(
    prepared, model, builder, reference
) -> None:
    # In this summer week the meter-versus-physics score stays under its threshold (0.48
    # against 0.6), but the forecast follows the low reading: the plant beats it by ~20 %.
    rows = store_rows(prepared, model, builder, SUMMER, LOW_GHI)
    result = drift.monitor(rows, reference, PROMISED)
    assert result.performance_drift, result.reason
    assert result.surplus_ratio > drift.DriftConfig().max_surplus_ratio
    assert "the irradiance reading is likely too low" in result.reason
    assert result.diagnosis.cause == Cause.IRRADIANCE_SENSOR
    assert "the irradiance reading is likely too low" in result.diagnosis.evidence


def test_an_inverter_capped_at_70_percent_is_performance_drift(
    prepared, model, builder, reference
) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, CAPPED)
    result = drift.monitor(rows, reference, PROMISED)
    assert result.performance_drift, result.reason
    assert result.peak_ratio < drift.DriftConfig().min_peak_ratio
    assert "performance drift: the plant delivers" in result.reason
    assert result.diagnosis.cause == Cause.CLIPPING and not result.diagnosis.data_fault


def test_a_cap_that_clips_a_summer_week_is_seen_at_its_ceiling(
    prepared, model, builder, reference
) -> None:
    # The 45° array seldom passes 70 % of capacity in June: the high-forecast rows still
    # meet the forecast, but the clipped rows sit at one ceiling under it.
    rows = store_rows(prepared, model, builder, SUMMER, CAPPED)
    result = drift.monitor(rows, reference, PROMISED)
    config = drift.DriftConfig()
    assert result.peak_ratio >= config.min_peak_ratio
    assert result.performance_drift, result.reason
    assert result.clipped_rows >= config.min_clipped_rows
    assert "measured power sits at a ceiling of 2205 W" in result.reason
    assert result.diagnosis.cause == Cause.CLIPPING


def test_a_plant_that_is_down_is_not_called_an_inverter_limit(
    prepared, model, builder, reference
) -> None:
    # Output at 2 % of what was measured (snow, an outage): a flat, low "ceiling" under
    # every forecast, which is the peak ratio's finding, not a capped inverter's.
    rows = store_rows(prepared, model, builder, SUMMER)
    rows = rows.assign(measured_w=rows["measured_w"] * 0.02)
    result = drift.monitor(rows, reference, PROMISED)
    assert result.performance_drift, result.reason
    assert result.peak_ratio < 0.1
    assert result.clipped_rows == 0
    assert "inverter limit" not in result.reason
    assert result.diagnosis.cause == Cause.PLANT_LOSS_STEP


@pytest.mark.parametrize(("hours", "late"), [(1.0, "later"), (-1.0, "earlier")])
def test_a_weather_clock_off_by_an_hour_is_named_with_its_offset(
    prepared, model, builder, reference, hours: float, late: str
) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, Fault("time-shift", hours))
    result = drift.monitor(rows, reference, PROMISED)
    assert result.data_drift, result.reason
    # The half-hour grid's best match lies within a step of the true hour.
    assert abs(result.time_offset_min - 60 * hours) <= 30
    assert result.diagnosis.cause == Cause.TIME_MISALIGNMENT and result.diagnosis.data_fault
    assert "physics from weather stamped" in result.diagnosis.evidence
    assert f"min {late}" in result.reason


def test_a_string_outage_is_a_step_loss_of_the_plant(prepared, model, builder, reference) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, Fault("string-outage", 0.75))
    result = drift.monitor(rows, reference, PROMISED)
    assert result.performance_drift, result.reason
    assert 0.7 < result.peak_ratio < 0.8
    assert result.diagnosis.cause == Cause.PLANT_LOSS_STEP and not result.diagnosis.data_fault
    assert "daily delivered share" in result.diagnosis.evidence


# Four weeks of a plant's delivered share, day by day: a few percent of weather noise
# (the forecast misses some days) around what the plant really does.
NOISE = np.tile([0.01, -0.02, 0.0, 0.02, -0.01, 0.015, -0.015], 4)
CLOUDY_MISS = np.where(np.arange(28) == 9, -0.9, 0.0)  # a day the forecast got wrong


@pytest.mark.parametrize(
    ("share", "shape"),
    [
        (1 - 0.003 * np.arange(28), "gradual"),  # soiling: 0.3 % more each day
        (np.where(np.arange(28) < 21, 1.0, 0.75), "step"),  # strings lost in the last week
        (np.full(28, 0.75), "step"),  # lost before these weeks: nothing fell in them
        (1 - 0.003 * np.arange(14), "step"),  # two weeks cannot tell a trend from a step
    ],
)
def test_a_loss_is_gradual_only_when_the_share_fell_week_after_week(
    share: np.ndarray, shape: str
) -> None:
    days = pd.date_range("2013-10-01", periods=len(share)).date
    noisy = share + NOISE[: len(share)] + CLOUDY_MISS[: len(share)]
    assert loss_shape(pd.Series(noisy, index=days)) == shape


def test_night_only_is_not_enough_data_not_an_alarm(prepared, model, builder, reference) -> None:
    week = store_rows(prepared, model, builder, SUMMER)
    night = week[week.index.hour.isin([22, 23, 0, 1, 2, 3])]
    result = drift.monitor(night, reference, PROMISED)
    assert (result.day_rows, result.night_rows) == (0, len(night))
    assert not result.drift
    assert "data drift: not enough data (0 daytime rows" in result.reason
    assert "performance: not enough data (0 daytime rows with actuals" in result.reason


def test_no_actuals_yet_judges_the_inputs_only(prepared, model, builder, reference) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, LOW_GHI)
    rows["measured_w"] = float("nan")
    result = drift.monitor(rows, reference, PROMISED)
    assert not result.performance_drift and pd.isna(result.nrmse)
    assert "performance: not enough data" in result.reason
    # The meter-versus-physics ratio needs actuals; the others are still judged.
    assert "measured_to_physical" not in result.scores
    assert {"clearsky_index", "temp_air", "predicted_to_physical"} <= set(result.scores)
    assert "not enough rows for measured_to_physical" in result.reason


def test_bad_input_is_refused_in_words(prepared, model, builder, reference) -> None:
    rows = store_rows(prepared, model, builder, SUMMER)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['predicted_w'\]"):
        drift.monitor(rows.drop(columns="predicted_w"), reference, PROMISED)
    with pytest.raises(ValueError, match="naive timestamps"):
        drift.monitor(rows.tz_localize(None), reference, PROMISED)
    with pytest.raises(ValueError, match="reference has no rows"):
        drift.monitor(rows, reference.iloc[:0], PROMISED)
    with pytest.raises(ValueError, match="promised nRMSE must be a positive fraction"):
        drift.monitor(rows, reference, 0.0)


@pytest.mark.integration
@pytest.mark.prometheus
def test_figures_reach_a_real_pushgateway(
    tmp_path: Path, prepared, model, builder, reference
) -> None:
    rows = store_rows(prepared, model, builder, AUTUMN, LOW_GHI)
    result = drift.monitor(rows, reference, PROMISED)
    with pushgateway(tmp_path) as url:
        drift_metrics.push(result, url, model_version="7")
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    lines = [line for line in text.splitlines() if line.startswith("solar_drift_")]
    labels = 'instance="",job="solar_mlops_drift",model_version="7"'
    assert f"solar_drift_data_drift{{{labels}}} 1" in lines
    assert f"solar_drift_performance_drift{{{labels}}} 1" in lines
    assert f"solar_drift_clipped_rows{{{labels}}} 0" in lines
    assert f"solar_drift_data_fault{{{labels}}} 1" in lines
    assert f'solar_drift_cause{{cause="irradiance-sensor",{labels}}} 1' in lines
    surplus = next(line for line in lines if line.startswith("solar_drift_surplus_ratio{"))
    assert abs(float(surplus.split()[-1]) - result.surplus_ratio) < 1e-9
    score = result.scores["measured_to_physical"]
    assert any(
        line.startswith('solar_drift_feature_score{feature="measured_to_physical"')
        and abs(float(line.split()[-1]) - score) < 1e-9
        for line in lines
    )
    assert any(f'kind="day",model_version="7"}} {result.day_rows}' in line for line in lines)

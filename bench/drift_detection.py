"""Drift monitor on replayed 2013: false alarms on normal weeks, weeks to detect a fault,
the cause it names, and the time to judge 30 days of 15-minute data.

    uv run python bench/drift_detection.py

A model trained the fast way (the tuned defaults, as the tests do) forecasts 2013 from
its weather; 7-day windows slide over the year, each judged against the same weeks of
2011-2012. Faults start at the first window of each month and last to the year's end,
applied as the replayer applies them (``replay.traffic``): the weather feed's clock an
hour late and an hour early (time-shift:+-1), an irradiance sensor reading 20 % low
(irradiance-low:0.8, the model's forecast follows it), a quarter of the strings out
(string-outage:0.75), an inverter capped at 70 % of capacity (inverter-cap:0.7) and
soiling that takes 0.3 % of the output more every day (soiling:0.003). A fault is
detected when the monitor raises any alarm, as a false alarm is any alarm on a normal
window; a detection names the right cause when its diagnosis is the fault's.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from solar_mlops import drift, monitoring, prediction_store
from solar_mlops.data import TimeWindow, load_power
from solar_mlops.diagnosis import Cause
from solar_mlops.features import FeatureBuilder
from solar_mlops.ops.replay import Fault, traffic
from solar_mlops.predictor import PowerModel
from solar_mlops.training import TrainingConfig, prepare, rolling_backtest, train

FAST = TrainingConfig(tune=False, backtest=False)
YEAR = TimeWindow("2013-01-01", "2013-12-31")
TRAINING = TimeWindow("2011-01-01", "2012-12-31")
# Each fault, with the cause a diagnosis should name.
FAULTS = (
    ("time-shift", 1.0, Cause.TIME_MISALIGNMENT),
    ("time-shift", -1.0, Cause.TIME_MISALIGNMENT),
    ("irradiance-low", 0.8, Cause.IRRADIANCE_SENSOR),
    ("string-outage", 0.75, Cause.PLANT_LOSS_STEP),
    ("inverter-cap", 0.7, Cause.CLIPPING),
    ("soiling", 0.003, Cause.PLANT_LOSS_GRADUAL),
)
GRADUAL = {"soiling"}
MAX_FALSE_ALARMS = 1
# Step faults: found in the window they start in. Soiling: before it costs 3 % of output.
MAX_WINDOWS_TO_DETECT = 1
MAX_SOILING_LOSS = 0.03
WINDOWS_WATCHED = {"soiling": 8}
MIN_RIGHT_CAUSE = 0.9
MAX_SECONDS_30_DAYS = 10.0


def store_frame(weather: pd.DataFrame, measured: pd.Series, model, builder) -> pd.DataFrame:
    """What the prediction store holds for this weather: its forecast and the actuals."""
    features = builder.build(weather[["ghi", "temp_air"]])
    return pd.DataFrame(
        {
            "ghi": weather["ghi"],
            "temp_air": weather["temp_air"],
            "predicted_w": model.predict(features),
            "measured_w": measured.reindex(weather.index),
        },
        index=weather.index,
    )


def windows(frame: pd.DataFrame, length: pd.Timedelta) -> list[pd.Timestamp]:
    first = frame.index.min().normalize()
    return list(pd.date_range(first, frame.index.max() - length, freq=length))


def judge(frame, starts, reference, promised, builder, config) -> list[drift.DriftResult]:
    """Each window judged as monitor_drift judges it: with the days before it (to
    ``config.shape_days``) for the shape of a loss."""
    results = []
    history = pd.Timedelta(days=config.shape_days) - config.window
    for start in starts:
        rows = frame[(frame.index >= start) & (frame.index < start + config.window)]
        before = frame[(frame.index >= start - history) & (frame.index < start)]
        results.append(
            drift.monitor(
                rows,
                reference,
                promised,
                config=config,
                builder=builder,
                before=before,
            )
        )
    return results


def with_fault(dataset: pd.DataFrame, fault: Fault, site, model, builder) -> pd.DataFrame:
    """The store as it is when the replayer sends ``dataset`` with ``fault``."""
    sent = traffic(dataset, [fault], site)
    return store_frame(sent, sent["measured_w"], model, builder)


def time_judgement(
    live: pd.DataFrame, model: PowerModel, promised: float
) -> tuple[drift.DriftResult, float]:
    """What monitor_drift does with a window but the model's download: ``live`` written
    to a prediction store as the service and /actuals would, then, timed, read back
    (``prediction_store.recent_window``) and judged (``monitoring.judge_model``: the
    dataset loaded, the reference built from the training years, the monitor run)."""
    served = datetime.now(UTC)
    predictions = [
        {"request_id": uuid.uuid4().hex, "time": t.to_pydatetime(), "ghi": row.ghi,
         "temp_air": row.temp_air, "predicted_w": row.predicted_w, "model_name": "bench",
         "model_version": "1", "colour": "blue", "served_at": served}
        for t, row in live.iterrows()
    ]  # fmt: skip
    actuals = [(t.to_pydatetime(), float(w)) for t, w in live["measured_w"].dropna().items()]
    with tempfile.TemporaryDirectory() as scratch:
        engine = prediction_store.connect(f"sqlite:///{scratch}/store.db")
        prediction_store.write_predictions(engine, predictions)
        prediction_store.upsert_actuals(engine, actuals)
        started = time.perf_counter()
        recent = prediction_store.recent_window(
            engine, live.index.min().to_pydatetime(), live.index.max().to_pydatetime()
            + timedelta(seconds=1)
        )  # fmt: skip
        result = monitoring.judge_model(model, TRAINING, promised, recent)
        seconds = time.perf_counter() - started
        engine.dispose()
    return result, seconds


def main() -> None:
    prepared = prepare()
    trained = train(FAST, prepared)
    model, site = trained.model, prepared.site
    backtest = rolling_backtest(prepared, FAST, trained.tuning, progress=lambda _: None)
    promised = float(backtest["model_nrmse"].mean())
    builder = FeatureBuilder(site)
    config = drift.DriftConfig()

    frame = prepared.frame
    in_year = YEAR.mask(pd.DatetimeIndex(frame.index))
    in_training = TRAINING.mask(pd.DatetimeIndex(frame.index))
    reference = drift.training_reference(frame[in_training], model)
    year = store_frame(frame[in_year], frame.loc[in_year, "ac_power"], model, builder)
    starts = windows(year, config.window)

    clean = judge(year, starts, reference, promised, builder, config)
    print(f"model backtest nRMSE (promise) {promised:.2%}; {len(starts)} windows of "
          f"{config.window.days} days over 2013 (30-minute grid)")  # fmt: skip
    print(f"\n{'window':12} {'day':>4} {'act':>4} {'nRMSE':>6} {'peak':>5} {'surpl':>5} "
          f"{'clip':>4}  " + "  ".join(f"{c[:14]:>14}" for c in config.thresholds)
          + "  alarm")  # fmt: skip
    for start, r in zip(starts, clean, strict=True):
        alarm = ("D" if r.data_drift else "-") + ("P" if r.performance_drift else "-")
        cells = "  ".join(f"{r.scores.get(c, np.nan):14.2f}" for c in config.thresholds)
        print(f"{start.date()!s:12} {r.day_rows:4d} {r.actual_rows:4d} {r.nrmse:6.1%} "
              f"{r.peak_ratio:5.2f} {r.surplus_ratio:5.2f} {r.clipped_rows:4d}  {cells}  "
              f"{alarm}")  # fmt: skip
    false_data = sum(r.data_drift for r in clean)
    false_perf = sum(r.performance_drift for r in clean)
    false_windows = sum(r.drift for r in clean)
    for start, r in zip(starts, clean, strict=True):
        if r.drift:
            print(f"  alarm {start.date()}: {r.reason}")

    print(f"\n{'fault':18} {'starts':12} alarms by window   -> windows to detect, cause named")
    detected: dict[str, list[int | None]] = {}
    causes: dict[str, list[bool]] = {}
    soiling_loss: list[float] = []
    fault_starts = [s for s in starts if s == starts[0] or s.month != (s - config.window).month]
    dataset = frame[in_year]
    for kind, factor, cause in FAULTS:
        name = f"{kind}:{factor:g}"
        detected[name], causes[name] = [], []
        watched = WINDOWS_WATCHED.get(kind, MAX_WINDOWS_TO_DETECT + 1)
        for fault_start in fault_starts:
            fault = Fault(kind, factor, fault_start)
            later = [s for s in starts if s >= fault_start][:watched]
            faulty = with_fault(dataset, fault, site, model, builder)
            results = judge(faulty, later, reference, promised, builder, config)
            hits = [i for i, r in enumerate(results) if r.drift]
            first = results[hits[0]] if hits else None
            detected[name].append(hits[0] + 1 if hits else None)
            if first is not None:
                causes[name].append(first.diagnosis.cause == cause)
                if kind in GRADUAL:
                    soiling_loss.append(
                        factor * (later[hits[0]] + config.window - fault_start).days
                    )
            named = first.diagnosis.cause if first is not None else "-"
            print(f"{name:18} {fault_start.date()!s:12} "
                  + "".join("A" if r.drift else "-" for r in results).ljust(18)
                  + f" -> {str(hits[0] + 1) if hits else 'missed':6} {named}")  # fmt: skip

    # 30 days of 15-minute data: the store's grid (weather interpolated from 30 minutes,
    # measured power as logged every 15 minutes).
    month = frame.loc["2013-06-01":"2013-06-30", ["ghi", "temp_air"]]
    quarter_hourly = month.resample("15min").interpolate()
    live = store_frame(quarter_hourly, load_power(site=site), model, builder)
    started = time.perf_counter()
    timed = drift.monitor(live, reference, promised, config=config)
    seconds = time.perf_counter() - started
    judged, judge_seconds = time_judgement(live, model, promised)

    print(f"\nfalse alarms over {len(starts)} normal windows: data {false_data}, "
          f"performance {false_perf}, windows with any alarm {false_windows}")  # fmt: skip
    right = [ok for named in causes.values() for ok in named]
    for name, latencies in detected.items():
        share = f"{sum(causes[name])}/{len(causes[name])}" if causes[name] else "-"
        print(f"{name}: latencies {latencies}; right cause {share}")
    print(f"right cause in {sum(right)} of {len(right)} detections "
          f"({sum(right) / max(len(right), 1):.0%})")  # fmt: skip
    losses = ", ".join(f"{loss:.1%}" for loss in soiling_loss)
    print(f"soiling: output lost by the end of the detecting window: {losses or 'never detected'}")
    print(f"monitor on 30 days of 15-minute data ({len(live)} rows, {timed.day_rows} daytime): "
          f"{seconds:.2f} s")  # fmt: skip
    print(f"monitor_drift's judgement of the same 30 days (read from a SQLite store, the "
          f"dataset loaded, the 2011-2012 reference built, {judged.day_rows} daytime rows "
          f"judged): {judge_seconds:.2f} s")  # fmt: skip
    checks = {
        f"windows with a false alarm <= {MAX_FALSE_ALARMS}": false_windows <= MAX_FALSE_ALARMS,
        "step faults detected in their first window from every start": all(
            x == MAX_WINDOWS_TO_DETECT
            for name, latencies in detected.items()
            if name.partition(":")[0] not in GRADUAL
            for x in latencies
        ),
        f"soiling detected from every start before {MAX_SOILING_LOSS:.0%} of output is lost": (
            len(soiling_loss) == len(fault_starts) and max(soiling_loss) < MAX_SOILING_LOSS
        ),
        f"the right cause in >= {MIN_RIGHT_CAUSE:.0%} of detections": (
            sum(right) >= MIN_RIGHT_CAUSE * len(right)
        ),
        f"30 days of 15-minute data judged in <= {MAX_SECONDS_30_DAYS:.0f} s (monitor, "
        "and monitor_drift's whole judgement)": max(seconds, judge_seconds) <= MAX_SECONDS_30_DAYS,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()

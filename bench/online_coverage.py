"""Online calibration on replayed 2013: the served intervals' coverage over the 28 days
monitor_drift reads, day by day, on the clean year and with a fault from 1 October.

    uv run python bench/online_coverage.py

A model trained the fast way (as the tests do) serves 2013 from its weather; at the end
of each day, ``monitoring.interval_coverage`` judges the 28 days to it, as monitor_drift
does (200 daylight rows with actuals at least). IntervalCoverageOutOfBand fires when a
figure lies more than ``BAND`` from nominal: the clean year must never do so. The
faults show what the band lets through: whatever it misses, the drift monitor catches
(bench/drift_detection.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from solar_mlops import monitoring
from solar_mlops.data import TimeWindow
from solar_mlops.features import FeatureBuilder
from solar_mlops.ops.replay import Fault, traffic
from solar_mlops.training import TrainingConfig, prepare, train

FAST = TrainingConfig(tune=False, backtest=False)
YEAR = TimeWindow("2013-01-01", "2013-12-31")
DAYS = 28
# Off nominal by more than this: the alert (roles/prometheus/files/rules).
BAND = 0.15
FAULTS = (("irradiance-low", 0.8), ("string-outage", 0.75), ("inverter-cap", 0.7))
FAULT_START = "2013-10-01"


def daily_coverage(model, builder, frame: pd.DataFrame, faults: list[Fault]) -> pd.Series:
    """The coverage of the 28 days to each day's end, as monitor_drift would push it."""
    sent = traffic(frame, faults)
    served = sent.assign(predicted_w=model.predict(builder.build(sent[["ghi", "temp_air"]])))
    window = pd.Timedelta(days=DAYS)
    first, last = served.index[0].normalize(), served.index[-1].normalize()
    ends = pd.date_range(first + window, last, freq="D")
    judged = [served[(served.index >= end - window) & (served.index < end)] for end in ends]
    return pd.Series(
        [monitoring.interval_coverage(model, "bench", rows).observed for rows in judged],
        index=ends,
    )


def main() -> None:
    prepared = prepare()
    model = train(FAST, prepared).model
    assert model.intervals is not None
    nominal = model.intervals.levels[-1] - model.intervals.levels[0]
    builder = FeatureBuilder(prepared.site)
    frame = prepared.frame[YEAR.mask(pd.DatetimeIndex(prepared.frame.index))]

    clean = daily_coverage(model, builder, frame, [])
    outside = clean[(clean - nominal).abs() > BAND]
    print(f"clean 2013, {len(clean)} days judged, nominal {nominal:.0%}, band +-{BAND:.0%}:")
    print(f"  coverage min {clean.min():.1%} ({clean.idxmin():%Y-%m-%d}), median "
          f"{clean.median():.1%}, max {clean.max():.1%} ({clean.idxmax():%Y-%m-%d}); "
          f"not enough data {int(clean.isna().sum())} days")  # fmt: skip
    print(f"  days out of band: {len(outside)}  {'PASS' if outside.empty else 'FAIL'}")

    start = pd.Timestamp(FAULT_START, tz=prepared.site.timezone)
    for kind, factor in FAULTS:
        fault = Fault(kind, factor, start)
        found = daily_coverage(model, builder, frame, [fault])
        after = found[found.index > start]
        out = after[(after - nominal).abs() > BAND]
        first = (
            f"first out of band after {(out.index[0] - start).days} days ({out.iloc[0]:.1%})"
            if not out.empty
            else "never out of band"
        )
        print(f"{fault}: 28 days after the start {after.iloc[DAYS - 1]:.1%}; lowest "
              f"{np.nanmin(after.to_numpy()):.1%}; {first}")  # fmt: skip


if __name__ == "__main__":
    main()

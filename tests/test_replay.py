"""The traffic replayer: fault specs, pacing, and replays into the real service and store."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from postgres import PostgresServer
from servers import free_port, gunicorn_server, venv_bin
from typer.testing import CliRunner

from solar_mlops import prediction_store
from solar_mlops.cli import app
from solar_mlops.data import TimeWindow, load_dataset
from solar_mlops.ops.demo import DemoError, Load
from solar_mlops.ops.replay import (
    Fault,
    PacedClock,
    Replayer,
    ReplayError,
    ServiceClient,
    load_traffic,
    parse_fault,
    service_message,
    traffic,
)
from solar_mlops.pipeline import TrainOutcome
from solar_mlops.site import Site

SITE_TZ = Site().timezone
KEY = "replay-test-key"


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=SITE_TZ)


# --- fault specs -------------------------------------------------------------------------


def test_fault_specs_parse_with_and_without_a_start() -> None:
    assert parse_fault("irradiance-low:0.8@2013-05-04") == Fault(
        "irradiance-low", 0.8, at("2013-05-04")
    )
    assert parse_fault("inverter-cap:0.7") == Fault("inverter-cap", 0.7, None)
    # A start with an offset keeps it: the same instant, whatever the zone.
    fault = parse_fault("inverter-cap:1@2013-05-04T19:00Z")
    assert fault.start == at("2013-05-04 12:00")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("bogus:0.8", "unknown fault 'bogus'.*irradiance-low, inverter-cap"),
        ("irradiance-low", "needs a numeric FACTOR"),
        ("irradiance-low:", "needs a numeric FACTOR"),
        ("inverter-cap:seventy", "needs a numeric FACTOR"),
        ("inverter-cap:1.5", r"FACTOR for inverter-cap must be in \(0, 1\], got '1.5'"),
        ("irradiance-low:0", r"FACTOR for irradiance-low must be in \(0, 1\]"),
        ("irradiance-low:nan", r"FACTOR for irradiance-low must be in \(0, 1\]"),
        ("soiling:0.1", r"FACTOR for soiling must be in \(0, 0.05\] \(a share per day\)"),
        ("time-shift:0.25", "FACTOR for time-shift must be a non-zero multiple of 0.5"),
        ("time-shift:0", "FACTOR for time-shift must be a non-zero multiple of 0.5"),
        ("time-shift:13", r"within \+-12, got '13'"),
        ("irradiance-low:0.8@yesterday-ish", "START 'yesterday-ish' is not a date"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(spec: str, reason: str) -> None:
    with pytest.raises(ReplayError, match=reason):
        parse_fault(spec)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--fault", "irradiance-low:1.2@2013-05-04"], "Invalid value for --fault"),
        (["--start", "2013-02-30"], "Invalid value for --start: expected a date"),
        (["--actuals-delay", "a day"], "expected a duration such as 24h"),
        (["--speed", "-1"], "Invalid value for '--speed'"),
    ],
)
def test_bad_options_exit_2_before_anything_is_sent(args: list[str], reason: str) -> None:
    result = CliRunner().invoke(app, ["replay", "--url", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2
    assert reason in " ".join(result.output.replace("│", " ").split())


# --- the traffic -------------------------------------------------------------------------


def test_faults_change_the_traffic_from_their_start_and_compose() -> None:
    window = TimeWindow("2013-05-02", "2013-05-03")
    clean = load_traffic(window, [])
    low = Fault("irradiance-low", 0.8, at("2013-05-02 12:00"))
    cap = Fault("inverter-cap", 0.7, at("2013-05-03"))
    faulty = load_traffic(window, [low, cap, Fault("irradiance-low", 0.5, at("2013-05-03"))])
    limit = 0.7 * Site().capacity_w

    assert len(clean) == 96 and clean.index[0] == at("2013-05-02")
    before_low, before_cap = clean.index < low.start, clean.index < cap.start
    pd.testing.assert_series_equal(faulty["ghi"][before_low], clean["ghi"][before_low])
    pd.testing.assert_series_equal(faulty["temp_air"], clean["temp_air"])
    day2 = ~before_low & before_cap
    pd.testing.assert_series_equal(faulty["ghi"][day2], clean["ghi"][day2] * 0.8)
    pd.testing.assert_series_equal(faulty["ghi"][~before_cap], clean["ghi"][~before_cap] * 0.4)

    measured, clean_measured = faulty["measured_w"], clean["measured_w"]
    pd.testing.assert_series_equal(measured[before_cap], clean_measured[before_cap])
    assert clean_measured[before_cap].max() > limit  # so the cap would have shown
    capped = measured[~before_cap]
    assert capped.max() == limit
    pd.testing.assert_series_equal(capped, clean_measured[~before_cap].clip(upper=limit))


def test_plant_and_clock_faults_change_what_they_name_from_their_start() -> None:
    window = TimeWindow("2013-05-02", "2013-05-04")
    dataset = load_dataset()
    frame = dataset[window.mask(pd.DatetimeIndex(dataset.index))]
    clean = traffic(frame, [])
    start = at("2013-05-03")
    before, after = clean.index < start, clean.index >= start

    outage = traffic(frame, [Fault("string-outage", 0.75, start)])
    pd.testing.assert_series_equal(outage["measured_w"][before], clean["measured_w"][before])
    pd.testing.assert_series_equal(outage["measured_w"][after], clean["measured_w"][after] * 0.75)
    pd.testing.assert_frame_equal(outage[["ghi", "temp_air"]], clean[["ghi", "temp_air"]])

    soiled = traffic(frame, [Fault("soiling", 0.01, start)])
    loss = 1 - soiled["measured_w"][after] / clean["measured_w"][after]
    days = (loss.index - start) / pd.Timedelta(days=1)
    np.testing.assert_allclose(loss.dropna(), (0.01 * days)[loss.notna()], atol=1e-12)

    # +1 h: what the sensors measured at 11:00 arrives stamped 12:00.
    late = traffic(frame, [Fault("time-shift", 1.0, start)])
    assert late.loc[at("2013-05-03 12:00"), "ghi"] == clean.loc[at("2013-05-03 11:00"), "ghi"]
    pd.testing.assert_frame_equal(late[before], clean[before])
    pd.testing.assert_series_equal(late["measured_w"], clean["measured_w"])
    # Replayed, a shift with no start begins with the window, and the weather of the
    # window's first steps comes from before it: no step is lost.
    early = load_traffic(window, [Fault("time-shift", -1.0)])
    assert early.index.equals(clean.index)
    assert (
        early.loc[at("2013-05-02 00:00"), "temp_air"]
        == (dataset.loc[at("2013-05-02 01:00"), "temp_air"])
    )


@pytest.mark.parametrize(
    ("window", "faults", "reason"),
    [
        (TimeWindow("2015-01-01", "2015-01-02"), [], "no data in .* the data covers 2011-04-14"),
        (TimeWindow("2013-05-03", "2013-05-02"), [], "ends before it starts"),
        (
            TimeWindow("2013-05-01", "2013-05-02"),
            [Fault("inverter-cap", 0.7, at("2013-05-03"))],
            "starts after the replay window 2013-05-01..2013-05-02 ends",
        ),
    ],
)
def test_windows_without_data_and_faults_that_never_start_are_refused(
    window: TimeWindow, faults: list[Fault], reason: str
) -> None:
    with pytest.raises(ReplayError, match=reason):
        load_traffic(window, faults)


# --- pacing ------------------------------------------------------------------------------


class ManualTime:
    """A wall clock that moves only when slept on, or when the test says work took time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_paced_clock_maps_simulated_time_onto_wall_time() -> None:
    wall = ManualTime()
    clock = PacedClock(900, wall.monotonic, wall.sleep)  # 15 simulated minutes a second
    start = at("2013-05-01")
    clock.wait_until(start)
    clock.wait_until(start + pd.Timedelta("15min"))
    wall.now += 0.25  # the requests of that step took a quarter of a second
    clock.wait_until(start + pd.Timedelta("30min"))
    wall.now += 5  # a slow service: behind schedule, the clock does not wait
    clock.wait_until(start + pd.Timedelta("45min"))
    assert wall.slept == [1.0, 0.75]
    # The schedule stays anchored to the start: back on it, the clock waits again.
    clock.wait_until(start + pd.Timedelta("120min"))
    assert wall.slept == [1.0, 0.75, 1.0] and wall.now == 108


def test_speed_zero_never_waits_and_negative_speed_is_refused() -> None:
    wall = ManualTime()
    clock = PacedClock(0, wall.monotonic, wall.sleep)
    for hours in range(0, 48):
        clock.wait_until(at("2013-05-01") + pd.Timedelta(hours=hours))
    assert wall.slept == []
    with pytest.raises(ReplayError, match="speed must be 0"):
        PacedClock(-1)


def test_a_422_names_its_first_problems_and_counts_every_other_one() -> None:
    detail = [{"loc": ["body", "rows", i, "ghi"], "msg": "too low"} for i in range(20)]
    message = service_message(httpx.Response(422, json={"detail": detail, "errors_omitted": 30}))
    assert message.startswith("body.rows.0.ghi: too low; body.rows.1.ghi: too low; body.rows.2")
    assert message.endswith("(+47 more)")
    few = service_message(httpx.Response(422, json={"detail": detail[:2], "errors_omitted": 0}))
    assert "more" not in few
    assert service_message(httpx.Response(413, json={"detail": "over 5000 rows"})) == (
        "over 5000 rows"
    )


# --- against the real service ------------------------------------------------------------


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, embedded_registry: tuple[str, TrainOutcome]
) -> Iterator[tuple[str, sa.Engine, PostgresServer]]:
    """The service under gunicorn with its prediction store on a real PostgreSQL."""
    root = tmp_path_factory.mktemp("replay")
    uri, _ = embedded_registry
    with PostgresServer(root, timezone="America/Denver") as pg:
        env = {
            "MLFLOW_TRACKING_URI": uri,
            "SOLAR_MODEL_CACHE_DIR": str(root / "model-cache"),
            "SOLAR_PREDICTION_STORE_URL": pg.url,
            "SOLAR_API_KEY": KEY,
        }
        engine = prediction_store.connect(pg.url)
        with gunicorn_server(root, env) as url:
            yield url, engine, pg
        engine.dispose()


def stored_rows(engine: sa.Engine, start: pd.Timestamp, end: pd.Timestamp) -> int:
    table = prediction_store.predictions
    query = sa.select(sa.func.count()).where(table.c.time >= start, table.c.time < end)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def wait_for_rows(engine: sa.Engine, start: pd.Timestamp, end: pd.Timestamp, n: int) -> None:
    """The prediction log writes off the request path: wait until ``n`` rows are in."""
    deadline = time.monotonic() + 20
    while (stored := stored_rows(engine, start, end)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{stored} of {n} predictions stored after 20 s")
        time.sleep(0.1)


def solar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("solar"), "replay", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.postgres
def test_replay_into_the_service_stores_every_step_with_late_truth_and_faults(
    service: tuple[str, sa.Engine, PostgresServer], tmp_path: Path
) -> None:
    url, engine, _ = service
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    low, cap = "irradiance-low:0.8@2013-05-02T12:00", "inverter-cap:0.7@2013-05-03"
    done = solar(
        "--url", url, "--start", "2013-05-01", "--end", "2013-05-03", "--speed", "0",
        "--batch", "4", "--actuals-delay", "6h", "--fault", low, "--fault", cap,
        "--api-key-file", str(key_file),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    start, end = at("2013-05-01"), at("2013-05-04")
    clean = load_traffic(TimeWindow("2013-05-01", "2013-05-03"), [])
    wait_for_rows(engine, start, end, len(clean))
    window = prediction_store.recent_window(engine, start, end)

    # Every step predicted exactly once, by the served version.
    assert stored_rows(engine, start, end) == len(clean) == 144
    assert list(window.index) == list(clean.index)
    clean = clean.set_axis(window.index)  # the same instants: now comparable row by row
    assert (window["model_version"] == "1").all()
    assert (window["temp_air"] == clean["temp_air"]).all()

    # The sensor reads 20 % low from its fault's start, and not before.
    low_from = window.index >= at("2013-05-02 12:00")
    assert (window["ghi"][~low_from] == clean["ghi"][~low_from]).all()
    assert (window["ghi"][low_from] == clean["ghi"][low_from] * 0.8).all()
    assert clean["ghi"][low_from].max() > 0

    # Ground truth arrived for the steps 6 h older than the replay's end, and no others.
    due = window.index + pd.Timedelta("6h") <= end
    measured = clean["measured_w"].notna()
    assert window["measured_w"][due & measured].notna().all()
    assert window["measured_w"][~due | ~measured].isna().all()
    # The inverter caps at 70 % of capacity from its fault's start, and not before.
    capped, limit = window.index >= at("2013-05-03"), 0.7 * Site().capacity_w
    assert (window["measured_w"][~capped & due] == clean["measured_w"][~capped & due]).all()
    assert window["measured_w"][~capped].max() > limit
    assert window["measured_w"][capped].max() == limit

    posted = int((due & measured).sum())
    lines = done.stdout.splitlines()
    assert "predictions: 144" in lines
    assert f"actuals posted: {posted} ({int((~due & measured).sum())} not due yet, not sent)" in (
        lines
    )
    assert "failures: none" in lines
    assert "2013-05-02: " in done.stdout  # a progress line per simulated day


@pytest.mark.integration
@pytest.mark.postgres
def test_a_wrong_key_ends_the_replay_with_the_services_words_and_no_retry(
    service: tuple[str, sa.Engine, PostgresServer],
) -> None:
    url, _, _ = service
    sent = load_traffic(TimeWindow("2013-07-01", "2013-07-01"), [])
    client = ServiceClient(url, "not-the-key", retries=3)
    replayer = Replayer(client, PacedClock(0), batch=8, delay=pd.Timedelta(0))
    refused = r"/actuals .* refused with 401: missing or wrong X-API-Key"
    with pytest.raises(ReplayError, match=refused):
        replayer.run(sent)
    client.close()
    summary = replayer.summary
    # The first batch was predicted; its actuals, posted before the second, were refused.
    assert summary.predictions == 8 and summary.actuals == 0
    assert summary.failures == {"401": 1} and summary.retries == 0


@pytest.mark.integration
@pytest.mark.postgres
def test_a_store_outage_is_retried_then_counted_and_the_replay_goes_on(
    service: tuple[str, sa.Engine, PostgresServer],
) -> None:
    url, _, pg = service
    sent = load_traffic(TimeWindow("2013-08-01", "2013-08-01"), [])
    client = ServiceClient(url, KEY, retries=2, backoff_s=(0.05,))
    replayer = Replayer(client, PacedClock(0), batch=12, delay=pd.Timedelta(0))
    with pg.stopped():  # /predict still answers; /actuals says 503, nothing stored
        summary = replayer.run(sent)
    client.close()
    # Four batches; each one's truth is posted before the next and at the end.
    assert summary.predictions == 48 and summary.actuals == 0
    assert summary.failures == {"503": 4} and summary.retries == 4 * 2
    assert summary.requests == 1 + 4 + 4  # readiness, predictions, actuals


@pytest.mark.integration
def test_an_unreachable_service_is_named_with_the_cause() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = solar("--url", dead, "--start", "2013-05-01", "--end", "2013-05-01", "--speed", "0",
                 "--retries", "1")  # fmt: skip
    assert done.returncode == 2
    assert f"cannot reach {dead}/health/ready" in done.stdout
    assert "Connection refused" in done.stdout and "(after 2 attempts)" in done.stdout


@pytest.mark.integration
@pytest.mark.postgres
def test_the_demos_load_replays_its_window_until_stopped(
    service: tuple[str, sa.Engine, PostgresServer],
) -> None:
    url, _, _ = service
    # One day is 12 requests: at 100 a second, each pass takes about 0.12 s.
    load = Load(url, TimeWindow("2013-08-02", "2013-08-02"), [], rate=100)
    load.start()
    time.sleep(1.5)
    summary = load.finish()
    assert not load.is_alive()
    assert summary.predictions >= 3 * 48, summary  # three passes at least
    assert not summary.failures and summary.retries == 0


@pytest.mark.integration
def test_the_demos_load_reports_why_it_stopped() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    load = Load(dead, TimeWindow("2013-08-02", "2013-08-02"), [], rate=100)
    load.start()
    load.join(timeout=10)
    with pytest.raises(
        DemoError, match=f"the load stopped before the rollout ended: cannot reach {dead}"
    ):
        load.finish()

"""The prediction log and the store: on SQLite (a file) and on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from postgres import PostgresServer
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from solar_mlops import prediction_store
from solar_mlops.service import prediction_log
from solar_mlops.service.prediction_log import PredictionLog

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=[pytest.mark.integration, pytest.mark.postgres]),
]
READINGS = {
    "written": "solar_prediction_log_written_rows_total",
    "failures": "solar_prediction_log_write_failures_total",
    "dropped": "solar_prediction_log_dropped_rows_total",
    "queued": "solar_prediction_log_queue_rows",
}
START = datetime(2024, 6, 21, 18, 0, tzinfo=UTC)
SERVED_AT = datetime(2024, 6, 21, 18, 0, 1, 123456, tzinfo=UTC)
SITE_TZ = ZoneInfo("Etc/GMT+7")  # the PV site's clock: UTC-7, no DST
FAST = 0.1  # seconds: far above a queue put, far below any store round trip under load


# --- metrics -----------------------------------------------------------------------------


def readings() -> dict[str, float]:
    # Process-global metrics: tests compare deltas, never absolute values.
    return {key: REGISTRY.get_sample_value(name) or 0.0 for key, name in READINGS.items()}


def since(before: dict[str, float]) -> dict[str, float]:
    now = readings()
    return {key: now[key] - before[key] for key in READINGS}


# --- data --------------------------------------------------------------------------------


def prediction_rows(n: int) -> list[dict[str, Any]]:
    """Rows as the service submits them: UTC times, floats that are not round decimals."""
    return [
        {
            "request_id": f"req-{i // 7}",
            "time": START + timedelta(minutes=30 * i),
            "ghi": 800.0 + i / 3,
            "temp_air": 21.25 - i / 7,
            "predicted_w": 2500.0 + i * 0.1,
            "model_name": "solar-power",
            "model_version": "7",
            "colour": "blue",
            "served_at": SERVED_AT,
        }
        for i in range(n)
    ]


def naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


def utc_column(engine: Engine, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """A timestamp column as the stored UTC wall time, naive, on either backend."""
    if isinstance(column.type, sa.DateTime) and engine.dialect.name == "postgresql":
        # The server's zone is not UTC (see ``pg``): read the instant back in UTC.
        return sa.func.timezone("UTC", column).label(column.name)
    return column  # SQLite keeps the wall time it was given, without an offset


def stored_predictions(engine: Engine) -> list[dict[str, Any]]:
    table = prediction_store.predictions
    columns = [utc_column(engine, c) for c in table.c if c.name != "id"]
    with engine.connect() as connection:
        result = connection.execute(sa.select(*columns).order_by(table.c.id))
        return [dict(row) for row in result.mappings()]


def expected(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: naive_utc(value) for key, value in row.items()} for row in rows]


def stored_actuals(engine: Engine) -> list[tuple[datetime, float, datetime]]:
    table = prediction_store.actuals
    columns = [utc_column(engine, c) for c in table.c]
    with engine.connect() as connection:
        result = connection.execute(sa.select(*columns).order_by(table.c.time))
        return [(row.time, row.measured_w, row.received_at) for row in result]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def timed_submit(log: PredictionLog, rows: Sequence[dict[str, Any]]) -> float:
    started = time.perf_counter()
    log.submit(rows)
    return time.perf_counter() - started


@contextlib.contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold a lock that makes the writer's INSERT wait: a store that has stalled."""
    if engine.dialect.name == "sqlite":
        assert engine.url.database is not None
        connection = sqlite3.connect(engine.url.database, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            yield
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    else:
        # Leaving the block rolls the transaction back, which releases the lock.
        with engine.connect() as pg_connection:
            pg_connection.execute(sa.text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
            yield


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    # A session zone other than UTC: values only read back right if stored as instants.
    root = tmp_path_factory.mktemp("postgres")
    with PostgresServer(root, timezone="America/Denver") as server:
        yield server


@pytest.fixture
def pg_engine(pg: PostgresServer) -> Iterator[Engine]:
    """A fresh database per test on the shared server."""
    engine = prediction_store.connect(pg.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgres":
        # Looked up lazily so that SQLite-only runs never start a server.
        yield request.getfixturevalue("pg_engine")
        return
    engine = prediction_store.connect(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def open_log() -> Iterator[Callable[..., PredictionLog]]:
    """Started prediction logs, all closed at teardown so no writer outlives its test."""
    logs: list[PredictionLog] = []

    def make(
        engine: Engine, max_rows: int = 10_000, flush_rows: int = 64, flush_s: float = 0.0
    ) -> PredictionLog:
        log = PredictionLog(engine, max_rows=max_rows, flush_rows=flush_rows, flush_s=flush_s)
        log.start()
        logs.append(log)
        return log

    yield make
    for log in logs:
        log.close(timeout=10)


# --- prediction log ----------------------------------------------------------------------


def test_close_flushes_every_submitted_row(
    engine: Engine, open_log: Callable[..., PredictionLog]
) -> None:
    before = readings()
    log = open_log(engine, flush_rows=64)
    rows = prediction_rows(250)
    for i in range(0, len(rows), 7):  # request-sized submissions, batched by the writer
        log.submit(rows[i : i + 7])
    log.close()

    assert log.pending == 0
    assert stored_predictions(engine) == expected(rows)
    assert since(before) == {"written": 250, "failures": 0, "dropped": 0, "queued": 0}


def test_rows_submitted_within_flush_s_are_written_together(
    engine: Engine, open_log: Callable[..., PredictionLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []

    def counted(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
        writes.append(len(rows))
        prediction_store.write_predictions(engine, rows)

    monkeypatch.setattr(prediction_log, "write_predictions", counted)
    log = open_log(engine, flush_rows=100, flush_s=1.0)
    rows = prediction_rows(20)
    for i in range(0, len(rows), 4):
        log.submit(rows[i : i + 4])
    wait_until(lambda: log.pending == 0, "the batch")
    assert writes == [20]
    assert stored_predictions(engine) == expected(rows)


def test_close_does_not_wait_out_flush_s(
    engine: Engine, open_log: Callable[..., PredictionLog]
) -> None:
    log = open_log(engine, flush_s=60.0)
    rows = prediction_rows(5)
    log.submit(rows)
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 10
    assert stored_predictions(engine) == expected(rows)


def test_submit_never_blocks_and_drops_beyond_the_bound(
    engine: Engine, open_log: Callable[..., PredictionLog]
) -> None:
    prediction_store.create_schema(engine)
    before = readings()
    log = open_log(engine, max_rows=10, flush_rows=100)
    rows = prediction_rows(15)
    with write_lock(engine):
        # Nothing can be written while the lock is held, so the bound is reached
        # deterministically: 4 + 4 fit, 4 would make 12, 2 fit, 1 would make 11.
        took = [timed_submit(log, rows[a:b]) for a, b in ((0, 4), (4, 8), (8, 12), (12, 14))]
        took.append(timed_submit(log, rows[14:15]))
        assert max(took) < FAST
        assert log.pending == 10
        assert since(before) == {"written": 0, "failures": 0, "dropped": 5, "queued": 10}
    log.close()

    assert stored_predictions(engine) == expected(rows[0:8] + rows[12:14])
    assert since(before) == {"written": 10, "failures": 0, "dropped": 5, "queued": 0}


@pytest.mark.integration
@pytest.mark.postgres
def test_a_long_outage_holds_the_rows_until_the_store_is_back(
    pg: PostgresServer,
    pg_engine: Engine,
    open_log: Callable[..., PredictionLog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prediction_log, "BACKOFF_S", (0.05,))
    before = readings()
    log = open_log(pg_engine)
    rows = prediction_rows(30)
    # A first write leaves a pooled connection for the outage to cut.
    log.submit(rows[0:10])
    wait_until(lambda: log.pending == 0, "the first batch")

    with pg.stopped():
        assert timed_submit(log, rows[10:20]) < FAST
        # Far more failures than a shutdown allows: the batch is still held.
        wait_until(lambda: since(before)["failures"] > 3 * prediction_log.RETRIES, "failures")
        assert timed_submit(log, rows[20:30]) < FAST
        assert log.pending == 20
        assert since(before)["dropped"] == 0

    wait_until(lambda: log.pending == 0, "the held rows", timeout=15)
    log.close()
    assert stored_predictions(pg_engine) == expected(rows)
    delta = since(before)
    assert delta.pop("failures") > 3 * prediction_log.RETRIES
    assert delta == {"written": 30, "dropped": 0, "queued": 0}


@pytest.mark.integration
@pytest.mark.postgres
def test_shutdown_during_an_outage_counts_what_it_could_not_write(
    pg: PostgresServer,
    pg_engine: Engine,
    open_log: Callable[..., PredictionLog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prediction_log, "BACKOFF_S", (10.0,))
    before = readings()
    log = open_log(pg_engine)
    rows = prediction_rows(10)
    log.submit(rows[0:5])
    wait_until(lambda: log.pending == 0, "the first batch")

    with pg.stopped():
        log.submit(rows[5:10])
        wait_until(lambda: since(before)["failures"] >= 1, "a failed write")
        # The writer stops waiting between attempts: the stop is prompt, not 10 s a try.
        started = time.monotonic()
        log.close()
        assert time.monotonic() - started < 10
    delta = since(before)
    assert delta.pop("failures") == prediction_log.RETRIES + 1
    assert delta == {"written": 5, "dropped": 5, "queued": 0}


@pytest.mark.integration
@pytest.mark.postgres
def test_outage_within_the_backoff_window_loses_nothing(
    pg: PostgresServer,
    pg_engine: Engine,
    open_log: Callable[..., PredictionLog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # About 4.5 s of retries; a restart takes well under one.
    monkeypatch.setattr(prediction_log, "BACKOFF_S", (0.5, 1.0, 3.0))
    before = readings()
    log = open_log(pg_engine)
    rows = prediction_rows(15)
    log.submit(rows[0:5])
    wait_until(lambda: log.pending == 0, "the first batch")

    with pg.stopped():
        assert timed_submit(log, rows[5:15]) < FAST
        wait_until(lambda: since(before)["failures"] >= 1, "a failed write")

    wait_until(lambda: log.pending == 0, "the retried batch", timeout=15)
    delta = since(before)
    assert 1 <= delta.pop("failures") < prediction_log.RETRIES + 1
    assert delta == {"written": 15, "dropped": 0, "queued": 0}
    log.close()
    assert stored_predictions(pg_engine) == expected(rows)


# --- actuals -----------------------------------------------------------------------------


def test_first_writes_from_several_threads_create_the_schema_once(engine: Engine) -> None:
    """The prediction log's thread and /actuals' thread pool may both write first."""
    rows = prediction_rows(8)
    noon = datetime(2024, 6, 21, 12, 0, tzinfo=SITE_TZ)
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        if i % 2:
            prediction_store.write_predictions(engine, rows[i : i + 1])
        else:
            prediction_store.upsert_actuals(engine, [(noon + timedelta(hours=i), 1000.0 + i)])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))  # re-raises what a thread raised
    assert len(stored_predictions(engine)) == 4
    assert len(stored_actuals(engine)) == 4


def test_upsert_actuals_keeps_one_row_per_time_with_the_later_value(engine: Engine) -> None:
    prediction_store.create_schema(engine)
    noon = datetime(2024, 6, 21, 12, 0, tzinfo=SITE_TZ)  # 19:00 UTC
    later = noon + timedelta(minutes=30)
    assert prediction_store.upsert_actuals(engine, [(noon, 1500.0), (later, 1600.0)]) == 2
    # The same instant written in another zone is the same row.
    assert prediction_store.upsert_actuals(engine, [(noon.astimezone(UTC), 1550.0)]) == 1

    (t1, w1, received1), (t2, w2, received2) = stored_actuals(engine)
    assert (t1, w1) == (datetime(2024, 6, 21, 19, 0), 1550.0)
    assert (t2, w2) == (datetime(2024, 6, 21, 19, 30), 1600.0)
    assert received1 > received2  # the replaced row records its second arrival


def test_upsert_actuals_repeated_time_in_one_call_keeps_the_last(engine: Engine) -> None:
    # Nothing in the API rejects a request that repeats a time.
    prediction_store.create_schema(engine)
    noon = datetime(2024, 6, 21, 12, 0, tzinfo=SITE_TZ)
    assert prediction_store.upsert_actuals(engine, [(noon, 1500.0), (noon, 1510.0)]) == 2
    assert [(t, w) for t, w, _ in stored_actuals(engine)] == [
        (datetime(2024, 6, 21, 19, 0), 1510.0)
    ]


# --- the recent window (the drift monitor's input) ---------------------------------------


def window_rows(times: Sequence[datetime], served_at: datetime, version: str) -> list[dict]:
    return [
        {**row, "time": t, "served_at": served_at, "model_version": version}
        for row, t in zip(prediction_rows(len(times)), times, strict=True)
    ]


def test_recent_window_joins_actuals_and_keeps_the_latest_prediction(engine: Engine) -> None:
    noon = datetime(2013, 5, 2, 12, 0, tzinfo=SITE_TZ)
    times = [noon + timedelta(minutes=30 * i) for i in range(6)]
    first = window_rows(times, SERVED_AT, "7")
    # Times 2 and 3 predicted again, later, by another version: the later answer wins.
    again = [{**row, "predicted_w": row["predicted_w"] + 100} for row in first[2:4]]
    again = [{**row, "served_at": SERVED_AT + timedelta(hours=1), "model_version": "8"}
             for row in again]  # fmt: skip
    prediction_store.write_predictions(engine, first[:3])
    prediction_store.write_predictions(engine, again)
    # An older answer written last still loses.
    prediction_store.write_predictions(engine, first[3:])
    prediction_store.upsert_actuals(engine, [(times[1], 1500.0), (times[3], 1700.0)])
    prediction_store.upsert_actuals(engine, [(noon - timedelta(hours=1), 900.0)])  # no prediction

    # [start, end): times[1] .. times[4]; the bounds given in another zone.
    window = prediction_store.recent_window(engine, times[1].astimezone(UTC), times[5])

    assert list(window.columns) == list(prediction_store.WINDOW_COLUMNS)
    assert isinstance(window.index, pd.DatetimeIndex) and str(window.index.tz) == "UTC"
    assert list(window.index) == [t.astimezone(UTC) for t in times[1:5]]
    assert window["predicted_w"].tolist() == [
        first[1]["predicted_w"], again[0]["predicted_w"], again[1]["predicted_w"],
        first[4]["predicted_w"],
    ]  # fmt: skip
    assert window["model_version"].tolist() == ["7", "8", "8", "7"]
    assert window["ghi"].tolist() == [r["ghi"] for r in first[1:5]]
    assert window["temp_air"].tolist() == [r["temp_air"] for r in first[1:5]]
    measured = window["measured_w"]
    assert measured.dtype == "float64"
    assert measured.iloc[[0, 2]].tolist() == [1500.0, 1700.0]
    assert measured.iloc[[1, 3]].isna().all()
    assert (window["colour"] == "blue").all()


def test_recent_window_of_an_empty_store_is_an_empty_frame(engine: Engine) -> None:
    window = prediction_store.recent_window(
        engine, datetime(2013, 5, 1, tzinfo=UTC), datetime(2013, 5, 2, tzinfo=UTC)
    )
    assert window.empty and list(window.columns) == list(prediction_store.WINDOW_COLUMNS)
    assert isinstance(window.index, pd.DatetimeIndex) and str(window.index.tz) == "UTC"


def test_latest_prediction_time_is_the_newest_forecast_time_in_utc(engine: Engine) -> None:
    assert prediction_store.latest_prediction_time(engine) is None  # an empty store (no tables yet)
    noon = datetime(2013, 5, 2, 12, 0, tzinfo=SITE_TZ)
    times = [noon + timedelta(minutes=30 * i) for i in range(3)]
    prediction_store.write_predictions(engine, window_rows(times[::-1], SERVED_AT, "7"))
    # Actuals do not count.
    prediction_store.upsert_actuals(engine, [(noon + timedelta(days=1), 900.0)])

    latest = prediction_store.latest_prediction_time(engine)

    assert latest == times[-1] and latest.utcoffset() == timedelta(0)


def test_recent_window_refuses_naive_bounds(engine: Engine) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        prediction_store.recent_window(
            engine, datetime(2013, 5, 1), datetime(2013, 5, 2, tzinfo=UTC)
        )


@pytest.mark.integration
@pytest.mark.postgres
def test_recent_window_names_the_store_when_it_is_down(
    pg: PostgresServer, pg_engine: Engine
) -> None:
    start = datetime(2013, 5, 1, tzinfo=UTC)
    with (
        pg.stopped(),
        pytest.raises(prediction_store.StoreError, match="cannot read the prediction store"),
    ):
        prediction_store.recent_window(pg_engine, start, start + timedelta(days=1))

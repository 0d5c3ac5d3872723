"""The prediction store: every prediction served, and the ground truth that arrives
later. SQLAlchemy Core; SQLite by default, Postgres in deployment."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from solar_mlops.errors import SolarMLOpsError

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("ghi", sa.Float, nullable=False),
    sa.Column("temp_air", sa.Float, nullable=False),
    sa.Column("predicted_w", sa.Float, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, index=True),
    sa.Column("colour", sa.String(16), nullable=False),
    sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
)

actuals = sa.Table(
    "actuals",
    metadata,
    sa.Column("time", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("measured_w", sa.Float, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)


def connect(url: str) -> Engine:
    """An engine whose connections fail fast: an outage must not stall the writer."""
    args: dict[str, Any] = {}
    if url.startswith("sqlite"):
        args = {"timeout": 5}
    elif url.startswith("postgresql"):
        args = {"connect_timeout": 3}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=args)


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)


# Engines whose tables exist. The store may be down when the service starts, so the
# schema is made on the first write that reaches it, and once per engine after that.
_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
# The prediction-log thread and /actuals (thread pool) may both make the first write.
_schema_lock = threading.Lock()


def _ensure_schema(engine: Engine) -> None:
    if engine in _ready:
        return
    with _schema_lock:
        if engine in _ready:
            return
        try:
            create_schema(engine)
        except sa.exc.DatabaseError:
            # Another worker process created a table between the check and the CREATE:
            # the second pass sees it (and a store that is really down fails again).
            create_schema(engine)
        _ready.add(engine)


def write_predictions(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    # SQLite keeps only the clock time of a datetime: store UTC on every backend.
    values = [
        {**row, "time": row["time"].astimezone(UTC), "served_at": row["served_at"].astimezone(UTC)}
        for row in rows
    ]
    _ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(predictions.insert(), values)


def upsert_actuals(engine: Engine, rows: Sequence[tuple[datetime, float]]) -> int:
    """Store measured power; a later value for the same time replaces the earlier one."""
    received = datetime.now(UTC)
    values = [
        {"time": t.astimezone(UTC), "measured_w": w, "received_at": received} for t, w in rows
    ]
    insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(actuals)
    statement = insert.on_conflict_do_update(
        index_elements=[actuals.c.time],
        set_={"measured_w": insert.excluded.measured_w, "received_at": insert.excluded.received_at},
    )
    _ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(statement, values)
    return len(values)


class StoreError(SolarMLOpsError):
    """The prediction store cannot be read."""


WINDOW_COLUMNS = ("ghi", "temp_air", "predicted_w", "measured_w", "model_version", "colour")


def recent_window(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """What was predicted for the times in ``[start, end)``, with the ground truth so far.

    The contract (the drift monitor's input):

    - one row per predicted time ``t`` with ``start <= t < end`` (the time the forecast is
      for, not when it was served); times with actuals but no prediction are left out;
    - indexed by ``time``: a tz-aware ``DatetimeIndex`` in UTC, ascending, unique;
    - columns ``WINDOW_COLUMNS``: ``ghi`` and ``temp_air`` as the client sent them (W/m2,
      degC), ``predicted_w`` (W), ``measured_w`` (W, NaN while no actual has arrived for
      that time), ``model_version`` and ``colour`` of the service that answered; the
      numbers are float64;
    - a time predicted more than once (a client repeating a forecast, a retried request)
      keeps its latest prediction, by the time it was served;
    - an empty window is an empty frame with the same index type and columns.

    ``start`` and ``end`` must be tz-aware. Raises ``StoreError`` when the store cannot be
    reached or read.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("recent_window needs tz-aware start and end")
    p = predictions
    latest_first = sa.func.row_number().over(
        partition_by=p.c.time, order_by=(p.c.served_at.desc(), p.c.id.desc())
    )
    served = [p.c[name] for name in WINDOW_COLUMNS if name != "measured_w"]
    ranked = (
        sa.select(p.c.time, *served, latest_first.label("rank"))
        .where(p.c.time >= start.astimezone(UTC), p.c.time < end.astimezone(UTC))
        .subquery()
    )
    columns = [ranked.c[n] if n in ranked.c else actuals.c[n] for n in WINDOW_COLUMNS]
    query = (
        sa.select(ranked.c.time, *columns)
        .select_from(ranked.outerjoin(actuals, actuals.c.time == ranked.c.time))
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.time)
    )
    rows = _read(engine, query)
    frame = pd.DataFrame(rows, columns=["time", *WINDOW_COLUMNS])
    # SQLite hands back naive UTC wall times, PostgreSQL instants in the session's zone.
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("time"), utc=True), name="time")
    numeric = ["ghi", "temp_air", "predicted_w", "measured_w"]
    frame[numeric] = frame[numeric].astype("float64")
    return frame


def latest_prediction_time(engine: Engine) -> datetime | None:
    """The newest time a forecast was made for (UTC), or None when there is none yet.

    Replayed traffic carries the data's own times, so this, not the clock, is where the
    monitor's window ends. Raises ``StoreError`` like ``recent_window``.
    """
    [(latest,)] = _read(engine, sa.select(sa.func.max(predictions.c.time)))
    # SQLite hands back naive UTC wall times, PostgreSQL instants in the session's zone.
    return None if latest is None else pd.to_datetime(latest, utc=True).to_pydatetime()


def _read(engine: Engine, query: sa.Select) -> list[sa.Row]:
    """Run one read, with the store's address and the driver's words on failure."""
    try:
        _ensure_schema(engine)
        with engine.connect() as connection:
            return list(connection.execute(query).all())
    except sa.exc.SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc  # the driver's words, without the SQL
        raise StoreError(f"cannot read the prediction store at {where}: {cause}") from exc

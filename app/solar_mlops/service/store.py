"""The prediction store: every prediction served, and the ground truth that arrives
later. SQLAlchemy Core; SQLite by default, Postgres in deployment."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

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

"""Write predictions to the store off the request path: a bounded queue drained by one
thread per worker. A slow or absent store never fails or slows a request: while it is
down the writer keeps retrying one batch and the rest wait in the queue, so an outage
loses nothing until the queue is full (rows beyond it are dropped and counted).
Whatever is queued is flushed on graceful shutdown; what cannot be is counted.

A write costs about a millisecond of CPU however few rows it carries (a pooled
connection, its liveness ping, a transaction). So when fewer than ``flush_rows`` rows
wait, the writer sleeps ``flush_s`` to let more arrive instead of writing each
request's rows on their own; asleep, it is not woken (nor takes the GIL) per request."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from solar_mlops.prediction_store import write_predictions
from solar_mlops.service import metrics

log = logging.getLogger(__name__)

Rows = Sequence[dict[str, Any]]
# Waits between attempts at a batch while the store is down; the last one repeats until
# the store is back. Shutting down, the writer stops waiting, and a batch that has
# failed more than RETRIES times is dropped (and counted).
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
RETRIES = 3


class PredictionLog:
    def __init__(
        self, engine: Engine, max_rows: int, flush_rows: int, flush_s: float = 0.0
    ) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        # Batches of rows; None asks the writer to stop.
        self._queue: queue.SimpleQueue[Rows | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: Rows) -> None:
        """Queue rows for writing; never blocks. Rows beyond the bound are dropped."""
        with self._lock:
            if self._pending + len(rows) > self.max_rows:
                metrics.LOG_DROPPED.inc(len(rows))
                return
            self._pending += len(rows)
        metrics.LOG_QUEUE_ROWS.inc(len(rows))
        self._queue.put(rows)

    def close(self, timeout: float = 20.0) -> None:
        """Write what is queued (graceful shutdown), waiting at most ``timeout``."""
        if self._thread.is_alive():
            self._closing.set()
            self._queue.put(None)
            self._thread.join(timeout)
        if self._thread.is_alive():
            # The process is going away with them: they are lost, so count them.
            metrics.LOG_DROPPED.inc(self._pending)
            log.error("prediction log: %d rows unwritten at shutdown", self._pending)

    @property
    def pending(self) -> int:
        return self._pending

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[dict[str, Any]] = []
            item = self._queue.get()
            if self._pending < self.flush_rows:  # a small batch so far: let it grow
                self._closing.wait(self.flush_s)
            while True:
                if item is None:
                    stopping = True
                    break
                batch.extend(item)
                if len(batch) >= self.flush_rows:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        failures = 0
        while True:
            try:
                write_predictions(self.engine, batch)
            except Exception as exc:  # any store error: count it, back off, try again
                metrics.LOG_WRITE_FAILURES.inc()
                failures += 1
                if self._closing.is_set() and failures > RETRIES:
                    metrics.LOG_DROPPED.inc(len(batch))
                    log.error(
                        "prediction log: dropped %d rows at shutdown, the store still failing: %s",
                        len(batch),
                        exc,
                    )
                    break
                if failures == 1:
                    log.warning(
                        "prediction log: the store failed, retrying while rows "
                        "queue (%d waiting): %s",
                        self._pending,
                        exc,
                    )
                self._closing.wait(BACKOFF_S[min(failures, len(BACKOFF_S)) - 1])
                continue
            metrics.LOG_WRITTEN.inc(len(batch))
            if failures:
                log.warning("prediction log: the store is back after %d failed attempts", failures)
            break
        with self._lock:
            self._pending -= len(batch)
        metrics.LOG_QUEUE_ROWS.dec(len(batch))

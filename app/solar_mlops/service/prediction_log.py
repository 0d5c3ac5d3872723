"""Write predictions to the store off the request path: a bounded queue drained by one
thread per worker. A slow or absent store never fails or slows a request; what cannot
be written is counted, and whatever is queued is flushed on graceful shutdown.

A write costs about a millisecond of CPU however few rows it carries (a pooled
connection, its liveness ping, a transaction). So when fewer than ``flush_rows`` rows
wait, the writer sleeps ``flush_s`` to let more arrive instead of writing each
request's rows on their own; asleep, it is not woken (nor takes the GIL) per request."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from solar_mlops.service import metrics
from solar_mlops.service.store import write_predictions

log = logging.getLogger(__name__)

_STOP = object()
RETRIES = 3
BACKOFF_S = (0.5, 1.0, 2.0)


class PredictionLog:
    def __init__(
        self, engine: Engine, max_rows: int, flush_rows: int, flush_s: float = 0.0
    ) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
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
            self._queue.put(_STOP)
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
                if item is _STOP:
                    stopping = True
                    break
                batch.extend(item)  # type: ignore[arg-type]
                if len(batch) >= self.flush_rows:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(RETRIES + 1):
            try:
                write_predictions(self.engine, batch)
            except Exception as exc:  # any store error: count it, back off, try again
                metrics.LOG_WRITE_FAILURES.inc()
                log.warning("prediction log: write of %d rows failed: %s", len(batch), exc)
                if attempt < RETRIES:
                    time.sleep(BACKOFF_S[attempt])
                continue
            metrics.LOG_WRITTEN.inc(len(batch))
            break
        else:
            metrics.LOG_DROPPED.inc(len(batch))
            log.error("prediction log: dropped %d rows after %d attempts", len(batch), RETRIES + 1)
        with self._lock:
            self._pending -= len(batch)
        metrics.LOG_QUEUE_ROWS.dec(len(batch))

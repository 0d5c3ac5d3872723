"""gunicorn settings for the prediction service.

Run as ``gunicorn -c python:solar_mlops.service.gunicorn_conf``.

Server-level knobs come from ``SOLAR_BIND``, ``SOLAR_WORKERS`` and ``SOLAR_TIMEOUT``;
the application's own settings are read by ``ServiceSettings``.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

# Shared metric files for all workers. This file is read before the app (and with it
# prometheus_client) is preloaded, so the folder is set and emptied here: counts from a
# previous run must not leak into this one.
_metrics_dir = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "solar-metrics")
    )
)
shutil.rmtree(_metrics_dir, ignore_errors=True)
_metrics_dir.mkdir(parents=True)

# uvloop's libuv accepts every pending connection on one wake-up, so the first worker
# to wake took all of a client's simultaneous connections (16+0 happened) and the other
# core idled. With this set, libuv yields after each accept and the workers share them.
os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")

wsgi_app = "solar_mlops.service.main:create_app()"
worker_class = "uvicorn_worker.UvicornWorker"
bind = os.environ.get("SOLAR_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("SOLAR_WORKERS", "2"))
# The model is loaded once, in the master, before the fork: workers start serving at
# once and share the model's memory pages.
preload_app = True
timeout = int(os.environ.get("SOLAR_TIMEOUT", "30"))
# On SIGTERM workers finish in-flight requests and flush the prediction log.
graceful_timeout = 30
keepalive = 5
accesslog = None  # requests are counted in /metrics; errors still go to stderr
# gunicorn's runtime control socket is not used, and its default lives under $HOME,
# which a read-only container does not have.
control_socket_disable = True
errorlog = "-"


def pre_fork(server: object, worker: object) -> None:
    """Move everything the preloaded app allocated (models, pandas, MLflow) out of the
    garbage collector's reach: a full collection would otherwise scan millions of
    long-lived objects, stalling requests for 100 ms and more, and touch (so copy)
    memory pages the workers could share."""
    gc.freeze()
    # Requests allocate thousands of short-lived objects; collecting the youngest
    # generation every 700 allocations (the default) costs more than it frees.
    gc.set_threshold(20_000, 20, 20)


class _Worker(Protocol):
    """What a server hook reads of gunicorn's worker."""

    pid: int


def child_exit(server: object, worker: _Worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

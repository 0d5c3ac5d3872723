"""Start real servers on 127.0.0.1 for integration tests, and stop them afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import tiers

REPO = Path(__file__).resolve().parents[1]


def venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment, whatever PATH says."""
    return str(Path(sys.executable).with_name(name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def running(
    command: list[str],
    health_url: str,
    log: Path,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; yield once ``health_url`` answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        wait_for_http(health_url, process, log, timeout)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real MLflow tracking server: SQLite backend, artifacts served from a folder."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        venv_bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with running(command, f"{url}/health", root / "mlflow-server.log", timeout=90):
        yield url


@contextlib.contextmanager
def gunicorn_server(root: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """The prediction service as deployed: gunicorn with uvicorn workers, on 127.0.0.1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "SOLAR_BIND": f"127.0.0.1:{port}",
        "SOLAR_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(root / "metrics"),
        **env,
    }
    command = [venv_bin("gunicorn"), "-c", "python:solar_mlops.service.gunicorn_conf"]
    with running(command, f"{url}/health/ready", root / "gunicorn.log", timeout=90, env=settings):
        yield url


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's AWS server on 127.0.0.1: a real S3 and EC2 endpoint for boto3 and Ansible."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def pushgateway(root: Path) -> Iterator[str]:
    """Debian's Prometheus Pushgateway on 127.0.0.1, metrics kept in memory only."""
    tiers.require("prometheus")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        "prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
    ]  # fmt: skip
    with running(command, f"{url}/-/ready", root / "pushgateway.log", timeout=30):
        yield url


@contextlib.contextmanager
def prometheus_server(root: Path, config: dict[str, object], port: int) -> Iterator[str]:
    """Debian's Prometheus on 127.0.0.1:``port`` (from ``free_port``, so that ``config``
    can name it) with ``config`` as its prometheus.yml (JSON is YAML); its TSDB lives
    in ``root``."""
    tiers.require("prometheus")
    url = f"http://127.0.0.1:{port}"
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))
    command = [
        "prometheus", f"--config.file={config_file}", f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with running(command, f"{url}/-/ready", root / "prometheus.log", timeout=60):
        yield url


@contextlib.contextmanager
def alertmanager(root: Path, config: dict[str, object]) -> Iterator[str]:
    """Debian's Alertmanager on 127.0.0.1 with ``config`` as its alertmanager.yml (JSON
    is YAML), alone (no cluster), its state in ``root``."""
    tiers.require("prometheus")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / "alertmanager.yml"
    config_file.write_text(json.dumps(config, indent=2))
    command = [
        "prometheus-alertmanager", f"--config.file={config_file}",
        f"--storage.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]  # fmt: skip
    with running(command, f"{url}/-/ready", root / "alertmanager.log", timeout=30):
        yield url


@contextlib.contextmanager
def prefect_server(root: Path) -> Iterator[str]:
    """Prefect's server from its own lock (docker/prefect-server), SQLite in ``root``;
    yields the API URL."""
    # `uv run` names itself in UV; make's uv need not be on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise RuntimeError("no uv (UV unset, none on PATH): the Prefect server runs from its lock")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [
        uv, "run", "--locked", "--project", str(REPO / "docker" / "prefect-server"),
        "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {
        "PREFECT_HOME": str(root / "server-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    # A fresh clone's first start also installs the server's environment from its lock.
    with running(command, f"{url}/health", root / "prefect-server.log", timeout=300, env=env):
        yield url


def register_flows(api: str, home: Path, pool: str) -> None:
    """Create the process work pool ``pool`` and register flows/prefect.yaml's
    deployments on the server at ``api``, as an operator does from the repository's
    root; in this process, which has imported the flows already (a new one would take
    ~20 s more)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
    from prefect.testing.cli import invoke_and_assert

    with (
        contextlib.chdir(REPO),
        temporary_settings(updates={PREFECT_API_URL: api, PREFECT_HOME: home}),
    ):
        invoke_and_assert(["work-pool", "create", pool, "--type", "process"], expected_code=0)
        invoke_and_assert(
            ["--no-prompt", "deploy", "--all", "--prefect-file", "flows/prefect.yaml"],
            expected_code=0,
        )


@contextlib.contextmanager
def prefect_worker(root: Path, pool: str, env: dict[str, str]) -> Iterator[None]:
    """A Prefect process worker on ``pool``; its flow runs inherit ``env``."""
    port = free_port()
    settings = {
        "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
        "PREFECT_WORKER_WEBSERVER_PORT": str(port),
        # Poll every second instead of ten: triggered runs start without waiting.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        **env,
    }
    command = [venv_bin("prefect"), "worker", "start", "--pool", pool, "--with-healthcheck"]
    with running(
        command, f"http://127.0.0.1:{port}/health", root / "prefect-worker.log", 60, settings
    ):
        yield

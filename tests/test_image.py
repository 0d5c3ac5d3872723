"""The serving image, built and run for real: hardened like production (read-only root,
no capabilities, non-root), loading its model from a real MLflow server, then starting
again from its cache volume once MLflow is gone.

Needs a Docker engine. Without one these tests fail rather than skip: CI starts dockerd,
and a silently skipped image test would let a broken image ship.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tiers
from conftest import FAST
from servers import free_port, mlflow_server

from solar_mlops.pipeline import register_candidate
from solar_mlops.registry import Registry
from solar_mlops.training import Prepared, TrainingResult

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "solar-mlops/debian:bookworm"
IMAGE = "solar-mlops/model-server:test"
# This machine reaches PyPI through a TLS-intercepting proxy whose CA lives here; other
# machines have no such files and build without an extra CA.
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
READY_TIMEOUT_S = 90
HEALTHY_TIMEOUT_S = 60
# A variable whose name says secret, holding a value.
SECRET_ASSIGNMENT = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY)[A-Z_]*=\S+", re.IGNORECASE)
ROW = {"time": "2013-06-21T12:00:00-07:00", "ghi": 850.0, "temp_air": 24.0}


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def run_logged(command: list[str], log: Path, timeout: float) -> float:
    """Run a build step with its output in ``log``; fail with the output's tail."""
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"{' '.join(command[:3])} ... failed ({result.returncode}):\n{tail}")
    return time.monotonic() - started


@pytest.fixture(scope="session")
def docker_engine() -> None:
    tiers.require("docker")
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"no usable docker client: {exc}")
    if info.returncode != 0:
        pytest.fail(
            "the Docker engine is not reachable, so the image cannot be tested "
            f"(start dockerd first):\n{info.stderr.strip()}"
        )


@pytest.fixture(scope="session")
def image(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The base image (built once, then reused) and the serving image on top of it
    (rebuilt every session; the layer cache makes that take seconds)."""
    logs = tmp_path_factory.mktemp("image-build")
    base_s = run_logged(
        ["bash", str(ROOT / "docker/base/build.sh")], logs / "base.log", timeout=900
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    build = [
        "docker", "build", "--file", "docker/model-server.Dockerfile",
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg", f"GIT_COMMIT={commit or 'unknown'}",
        "--tag", IMAGE,
    ]  # fmt: skip
    certificates = sorted(EXTRA_CA_DIR.rglob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    if certificates:
        bundle = "\n".join(path.read_text().strip() for path in certificates)
        build += ["--build-arg", f"EXTRA_CA_BUNDLE={bundle}"]
    image_s = run_logged([*build, "."], logs / "model-server.log", timeout=900)
    print(f"\nbase image: {base_s:.0f} s, serving image: {image_s:.0f} s (logs in {logs})")
    return IMAGE


@dataclass
class RegistryServer:
    url: str
    _stack: contextlib.ExitStack

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def registry_server(
    tmp_path_factory: pytest.TempPathFactory, prepared: Prepared, trained: TrainingResult
) -> Iterator[RegistryServer]:
    """A real MLflow server whose registry holds version 1 of the model as champion."""
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        # servers.mlflow_server runs `mlflow` from PATH, which lacks this environment's
        # bin folder when pytest is started as .venv/bin/pytest rather than `uv run`.
        venv_bin = str(Path(sys.executable).parent)
        patch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
        url = stack.enter_context(mlflow_server(tmp_path_factory.mktemp("mlflow")))
        patch.undo()
        outcome = register_candidate(Registry(tracking_uri=url), trained, FAST, prepared=prepared)
        assert str(outcome.version.version) == "1" and outcome.decision.promote
        yield RegistryServer(url, stack)


@pytest.fixture(scope="module")
def cache_volume(docker_engine: None) -> Iterator[str]:
    name = f"solar-model-cache-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "--force", name, check=False)


@dataclass
class Service:
    container: str
    url: str

    def text(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return response.read().decode()

    def get(self, path: str) -> dict[str, Any]:
        return json.loads(self.text(path))

    def post(self, path: str, body: object) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())

    def health(self) -> dict[str, Any]:
        state = docker("inspect", "--format", "{{json .State.Health}}", self.container)
        health = json.loads(state.stdout)
        assert health is not None, "the image declares no HEALTHCHECK"
        return health

    def logs(self) -> str:
        result = docker("logs", self.container, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = docker("inspect", "--format", "{{.State.Status}}", self.container)
            if state.stdout.strip() != "running":
                pytest.fail(f"container {state.stdout.strip()} before ready:\n{self.logs()}")
            with contextlib.suppress(OSError):
                self.get("/health/ready")
                return
            time.sleep(0.5)
        pytest.fail(f"not ready within {timeout} s:\n{self.logs()}")


@pytest.fixture(scope="module")
def service(image: str, registry_server: RegistryServer, cache_volume: str) -> Iterator[Service]:
    """The image run the way production runs it, pointed at the live registry."""
    port = free_port()
    name = f"solar-model-server-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "--detach", "--name", name,
        "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--mount", f"type=volume,source={cache_volume},target=/var/cache/solar-model",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--env", f"MLFLOW_TRACKING_URI={registry_server.url}",
        "--env", f"SOLAR_BIND=127.0.0.1:{port}",
        "--env", "SOLAR_MODEL_VERSION=champion",
        image,
    )  # fmt: skip
    try:
        running = Service(name, f"http://127.0.0.1:{port}")
        running.wait_ready()
        yield running
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def test_serves_the_champion_from_the_registry(service: Service) -> None:
    info = service.get("/version")
    assert info["model_version"] == "1"
    assert info["requested"] == "champion"
    assert info["source"] == "registry"
    assert info["service_git_commit"] != ""
    status, body = service.post("/predict", {"rows": [ROW]})
    assert status == 200
    power = body["predictions"][0]["ac_power_w"]
    assert math.isfinite(power) and power >= 0
    # Metrics (multiprocess files) and the default prediction log (SQLite) both live on
    # the /tmp tmpfs: the row is counted and, off the request path, written.
    deadline = time.monotonic() + 15
    while "solar_prediction_log_written_rows_total 1.0" not in (text := service.text("/metrics")):
        assert time.monotonic() < deadline, f"prediction never written:\n{text}\n{service.logs()}"
        time.sleep(0.5)
    assert "solar_prediction_rows_total 1.0" in text
    # gunicorn's control socket lives under HOME=/tmp; a read-only HOME would log this.
    assert "Failed to start control socket" not in service.logs()


def test_runs_as_fixed_non_root_user(service: Service) -> None:
    assert docker("exec", service.container, "id", "-u").stdout.strip() == "10001"
    assert docker("exec", service.container, "id", "-g").stdout.strip() == "10001"
    denied = docker("exec", service.container, "touch", "/srv/probe", check=False)
    assert denied.returncode != 0  # read-only root


def test_ships_only_the_serving_dependencies(service: Service) -> None:
    sklearn = docker("exec", service.container, "python", "-c", "import sklearn", check=False)
    assert sklearn.returncode != 0 and "No module named 'sklearn'" in sklearn.stderr
    script = (
        "import importlib.metadata as m, json\n"
        "def has(name):\n"
        "    try:\n"
        "        m.distribution(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return False\n"
        "    return True\n"
        "names = ['mlflow', 'matplotlib', 'scikit-learn', 'pvanalytics', 'pip', 'uv',\n"
        "         'mlflow-skinny', 'lightgbm', 'pvlib', 'fastapi', 'gunicorn',\n"
        "         'uvicorn-worker', 'prometheus-client', 'sqlalchemy', 'psycopg']\n"
        "print(json.dumps({n: has(n) for n in names}))\n"
    )
    installed = json.loads(docker("exec", service.container, "python", "-c", script).stdout)
    # Training-only packages and build tools are absent; everything serving needs is there.
    absent = {name for name, present in installed.items() if not present}
    assert absent == {"mlflow", "matplotlib", "scikit-learn", "pvanalytics", "pip", "uv"}


def test_ships_no_entry_point_it_cannot_run(service: Service) -> None:
    # The project's console scripts, from its metadata: declared, and installed into bin/.
    script = (
        "import importlib.metadata as m, json, os, subprocess\n"
        "dist = m.distribution('solar-mlops')\n"
        "names = {e.name for e in dist.entry_points\n"
        "         if e.group in ('console_scripts', 'gui_scripts')}\n"
        "for f in dist.files or []:\n"
        "    path = os.path.normpath(str(dist.locate_file(f)))\n"
        "    if os.path.dirname(path) == '/opt/venv/bin':\n"
        "        names.add(os.path.basename(path))\n"
        "ran = {}\n"
        "for name in sorted(names):\n"
        "    path = os.path.join('/opt/venv/bin', name)\n"
        "    if os.path.exists(path):\n"
        "        done = subprocess.run([path, '--help'], capture_output=True, text=True)\n"
        "        ran[name] = [done.returncode, done.stderr[-2000:]]\n"
        "    else:\n"
        "        ran[name] = None\n"
        "print(json.dumps(ran))\n"
    )
    scripts = json.loads(docker("exec", service.container, "python", "-c", script).stdout)
    # The wheel declares `solar`, so the listing found the project's scripts.
    assert "solar" in scripts, scripts
    # Each one is absent (`solar` needs the train group) or answers --help.
    failing = {name: run for name, run in scripts.items() if run is not None and run[0] != 0}
    assert not failing, f"entry points in the image that cannot run: {failing}"


def test_healthcheck_reports_healthy(service: Service) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while (health := service.health())["Status"] != "healthy" and time.monotonic() < deadline:
        time.sleep(1)
    assert health["Status"] == "healthy", health


def test_image_holds_no_secrets(image: str) -> None:
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.revision"] == env["GIT_COMMIT"]
    assert not [f"{k}=..." for k, v in env.items() if SECRET_ASSIGNMENT.search(f"{k}={v}")]
    assert not any(name.startswith("SOLAR_API_KEY") for name in env)
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert not SECRET_ASSIGNMENT.search(history)
    # The build's extra CA is trusted by the builder stage only.
    assert "BEGIN CERTIFICATE" not in history


def test_restarts_from_the_cache_when_mlflow_is_down(
    service: Service, registry_server: RegistryServer
) -> None:
    # Last in this module: it takes the registry away from every later user.
    registry_server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{registry_server.url}/health", timeout=2)
    docker("restart", "--time", "30", service.container, timeout=90)
    service.wait_ready()
    info = service.get("/version")
    assert info["source"] == "cache", service.logs()
    assert info["model_version"] == "1"
    status, _ = service.post("/predict", {"rows": [ROW]})
    assert status == 200

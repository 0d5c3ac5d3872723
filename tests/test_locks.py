"""The Prefect server's own lock (docker/prefect-server) and the project's lock agree on
Prefect's version, so the flows' client and the server they talk to are one release."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def locked_version(lock: Path, package: str) -> str:
    packages = tomllib.loads(lock.read_text())["package"]
    return next(entry["version"] for entry in packages if entry["name"] == package)


def test_the_prefect_server_and_the_flows_use_the_same_prefect() -> None:
    client = locked_version(REPO / "uv.lock", "prefect")
    server = locked_version(REPO / "docker/prefect-server/uv.lock", "prefect")
    assert client == server

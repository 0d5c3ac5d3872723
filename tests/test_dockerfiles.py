"""The four images built from this repository share their first two stages word for word,
so that Docker's layer cache builds Python, uv and the extra CA once for all four."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGES = ["model-server", "mlflow", "prefect", "prefect-server"]
SHARED_STAGES = ("python", "builder")


def stages(dockerfile: Path) -> dict[str, list[str]]:
    """Each named stage's instructions, comments and blank lines left out."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in dockerfile.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        named = re.match(r"FROM \S+ AS (\S+)$", line)
        if line.startswith("FROM "):
            current = found.setdefault(named.group(1), []) if named else None
        if current is not None:
            current.append(line)
    return found


@pytest.mark.parametrize("image", IMAGES[1:])
def test_the_first_two_stages_are_the_model_servers(image: str) -> None:
    reference = stages(REPO / "docker" / f"{IMAGES[0]}.Dockerfile")
    other = stages(REPO / "docker" / f"{image}.Dockerfile")
    for stage in SHARED_STAGES:
        assert reference[stage], f"model-server.Dockerfile has no stage {stage}"
        assert other.get(stage) == reference[stage], (
            f"docker/{image}.Dockerfile's stage {stage} differs from model-server's: "
            "Docker would build it again for this image"
        )


def test_the_images_install_the_uv_of_the_makefile() -> None:
    makefile = (REPO / "Makefile").read_text()
    wanted = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert wanted, "the Makefile sets no UV_VERSION"
    builder = stages(REPO / "docker" / f"{IMAGES[0]}.Dockerfile")["builder"]
    assert f"ARG UV_VERSION={wanted.group(1)}" in builder

"""Train and register the model into a throwaway SQLite MLflow registry, with the
project's own code, and lay out the service's model cache from it.

    .venv/bin/python molecule/resources/seed_registry.py <folder>

<folder>/registry/   mlflow.db and ./mlruns (MLflow writes artifacts there)
<folder>/cache/      <name>/v1/ ... <name>/v5/, <name>/resolved.json: the layout of
                     solar_mlops.service.model_store.ModelCache, what a colour's cache
                     volume holds after it has served those versions.
<folder>/cache.tar   the same, owned by the serving image's user (10001) with the
                     volume's modes: one file to copy into a volume and unpack there
                     (tasks/seed_volumes.yml), where copying the tree file by file took
                     minutes.

Versions 2-4 are registered from version 1's run (same weights): real registry versions
with their own numbers, enough to move colours between versions. Version 5 is trained on
power logged in kW instead of W: a real model whose forecasts are a thousand times too
small, which a deployment's smoke test must refuse. Every scenario gets the same
versions, so one folder can serve them all (make test and make molecule make one per run:
SOLAR_MOLECULE_SEED). Does nothing when <folder>/cache already holds every version (and
the archive exists); a lock keeps two scenarios from seeding one folder at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import tarfile
from pathlib import Path

from mlflow import MlflowClient

from solar_mlops.data import TARGET
from solar_mlops.registry import Registry
from solar_mlops.service.model_store import ModelCache, load_served_model
from solar_mlops.training import Prepared, TrainingConfig, prepare, train

CONFIG = TrainingConfig(tune=False, backtest=False)


def in_kilowatts(prepared: Prepared) -> Prepared:
    """The same rows and quality flags, with the target logged in the wrong unit."""
    frame = prepared.frame.copy()
    frame[TARGET] = frame[TARGET] / 1000.0
    return dataclasses.replace(prepared, frame=frame)


# Good versions from one run (same weights), then the broken one.
GOOD_VERSIONS = 4
# The serving image's user, and the modes of its cache volume.
IMAGE_UID = 10001
DIR_MODE, FILE_MODE = 0o750, 0o640


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        seed(folder)
        archive(folder / "cache", folder / "cache.tar")


def archive(cache_dir: Path, path: Path) -> None:
    """The cache as a tar whose members belong to the image's user, with its modes."""
    if path.exists():
        return

    def as_served(member: tarfile.TarInfo) -> tarfile.TarInfo:
        member.uid = member.gid = IMAGE_UID
        member.uname = member.gname = ""
        member.mode = DIR_MODE if member.isdir() else FILE_MODE
        return member

    partial = path.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        for entry in sorted(cache_dir.iterdir()):
            tar.add(entry, arcname=entry.name, filter=as_served)
    partial.rename(path)


def seed(folder: Path) -> None:
    registry_dir = folder / "registry"
    cache_dir = folder / "cache"
    uri = f"sqlite:///{registry_dir / 'mlflow.db'}"
    cache = ModelCache(cache_dir, "solar-power")
    if all(cache.has(str(number)) for number in range(1, GOOD_VERSIONS + 2)):
        print("cache present")
        return
    registry_dir.mkdir(parents=True, exist_ok=True)
    # MLflow puts a SQLite store's artifacts under ./mlruns, from the moment the
    # experiment is created (Registry()): everything runs from the registry's folder.
    with contextlib.chdir(registry_dir):
        registry = Registry(tracking_uri=uri)
        assert registry.name == "solar-power", registry.name
        prepared = prepare()
        first = registry.log_candidate(train(CONFIG, prepared), CONFIG)
        client = MlflowClient(tracking_uri=uri)
        registered = [first] + [
            client.create_model_version(registry.name, first.source, run_id=first.run_id)
            for _ in range(GOOD_VERSIONS - 1)
        ]
        registered.append(registry.log_candidate(train(CONFIG, in_kilowatts(prepared)), CONFIG))
        for version in registered:
            # The service's own start-up path while MLflow answers: resolve the pinned
            # version, download it into the cache, remember it, load it.
            served = load_served_model(registry.name, str(version.version), uri, cache_dir)
            assert served.source == "registry", served
    numbers = ", ".join(str(version.version) for version in registered)
    print(f"registered versions {numbers}; cache at {cache.root}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    main(args.folder.resolve())

"""Train and register the model into a throwaway SQLite MLflow registry, with the
project's own code, and lay out the service's model cache from it.

    .venv/bin/python molecule/model_server/seed_registry.py <folder>

<folder>/registry/   mlflow.db and ./mlruns (MLflow writes artifacts there)
<folder>/cache/      <name>/v1/, <name>/v2/, <name>/resolved.json: the layout of
                     solar_mlops.service.model_store.ModelCache, what a colour's cache
                     volume holds after it has served versions 1 and 2.

Version 2 is registered from version 1's run (same weights): it is a real registry
version with its own number, enough to move one colour between versions. Does nothing
when <folder>/cache is complete already.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from mlflow import MlflowClient

from solar_mlops.pipeline import train_and_register
from solar_mlops.registry import Registry
from solar_mlops.service.model_store import ModelCache, load_served_model
from solar_mlops.training import TrainingConfig


def main(folder: Path) -> None:
    registry_dir = folder / "registry"
    cache_dir = folder / "cache"
    uri = f"sqlite:///{registry_dir / 'mlflow.db'}"
    cache = ModelCache(cache_dir, "solar-power")
    if cache.has("1") and cache.has("2"):
        print("cache present")
        return
    registry_dir.mkdir(parents=True, exist_ok=True)
    # MLflow puts a SQLite store's artifacts under ./mlruns, from the moment the
    # experiment is created (Registry()): everything runs from the registry's folder.
    with contextlib.chdir(registry_dir):
        registry = Registry(tracking_uri=uri)
        assert registry.name == "solar-power", registry.name
        outcome = train_and_register(registry, TrainingConfig(tune=False, backtest=False))
        first = outcome.version
        client = MlflowClient(tracking_uri=uri)
        second = client.create_model_version(registry.name, first.source, run_id=first.run_id)
        for version in (first, second):
            # The service's own start-up path while MLflow answers: resolve the pinned
            # version, download it into the cache, remember it, load it.
            served = load_served_model(registry.name, str(version.version), uri, cache_dir)
            assert served.source == "registry", served
    print(f"registered versions {first.version} and {second.version}; cache at {cache.root}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())

"""Load the served model once at start-up: from MLflow by explicit version, through a
local cache that keeps the service starting when MLflow is down."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from solar_mlops.errors import RegistryError
from solar_mlops.features import FeatureBuilder
from solar_mlops.predictor import LoadedModel, download_version, load_model_dir

log = logging.getLogger(__name__)
# What the registry answers for a name, version or alias it does not have.
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


@dataclass(frozen=True)
class ServedModel:
    loaded: LoadedModel
    features: FeatureBuilder
    requested: str
    source: Literal["registry", "cache"]


class ModelCache:
    """``<dir>/<name>/v<N>/`` holds downloaded versions; ``resolved.json`` remembers what
    each requested alias last resolved to (the last-known-good answer)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self._index = self.root / "resolved.json"

    def folder(self, version: str) -> Path:
        return self.root / f"v{version}"

    def has(self, version: str) -> bool:
        return (self.folder(version) / "MLmodel").is_file()

    def store(self, version: str, source: Path) -> None:
        """Move a complete download into place; a half-written copy is never visible."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.rename(self.folder(version))

    def remember(self, requested: str, version: str, run_id: str) -> None:
        entries = self._entries()
        entries[requested] = {"version": version, "run_id": run_id}
        scratch = self._index.with_suffix(".tmp")
        scratch.write_text(json.dumps(entries, indent=2))
        scratch.replace(self._index)

    def recall(self, requested: str) -> tuple[str, str] | None:
        """The last version (and run id) ``requested`` resolved to, if still cached."""
        entry = self._entries().get(requested)
        if entry and self.has(entry["version"]):
            return entry["version"], entry["run_id"]
        if requested.isdigit() and self.has(requested):
            return requested, ""
        return None

    def _entries(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self._index.read_text())
        except (OSError, ValueError):
            return {}


def load_served_model(
    name: str, requested: str, tracking_uri: str, cache_dir: Path, sun_cache_rows: int = 0
) -> ServedModel:
    """Resolve ``requested`` once, fetch that version into the cache, and load it.

    If MLflow cannot be reached, serve the last-known-good cached copy and say so; if
    there is none, fail start-up with a message that names both problems.
    """
    cache = ModelCache(cache_dir, name)
    try:
        version, run_id = _fetch(cache, name, requested, tracking_uri)
        source: Literal["registry", "cache"] = "registry"
    except RegistryError:
        raise
    except Exception as exc:  # network, HTTP and store errors all mean "registry unavailable"
        remembered = cache.recall(requested)
        if remembered is None:
            raise RegistryError(
                f"cannot load model '{name}' {requested}: MLflow at {tracking_uri} is "
                f"unavailable ({exc.__class__.__name__}: {exc}) and {cache.root} holds no "
                "cached copy. Start MLflow, or pre-seed the cache."
            ) from exc
        version, run_id = remembered
        source = "cache"
        log.warning(
            "MLflow at %s unavailable (%s); serving cached %s v%s", tracking_uri, exc, name, version
        )
    loaded = load_model_dir(cache.folder(version), name, version, run_id)
    builder = FeatureBuilder(loaded.model.site, sun_cache_rows=sun_cache_rows)
    return ServedModel(loaded, builder, requested, source)


def _fetch(cache: ModelCache, name: str, requested: str, tracking_uri: str) -> tuple[str, str]:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if requested.isdigit():
            version = client.get_model_version(name, requested)
        else:
            version = client.get_model_version_by_alias(name, requested)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            what = "version" if requested.isdigit() else "alias"
            raise RegistryError(
                f"model '{name}' has no {what} '{requested}' at {tracking_uri}"
            ) from exc
        raise
    number = str(version.version)
    if not cache.has(number):
        with tempfile.TemporaryDirectory() as scratch:
            local = download_version(name, number, tracking_uri, Path(scratch))
            cache.store(number, local)
    cache.remember(requested, number, version.run_id or "")
    return number, version.run_id or ""

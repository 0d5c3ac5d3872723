"""A trained model ready to predict, and how to rebuild one from an MLflow model folder.

Serving imports this module, never the training ones: it needs LightGBM, numpy and
MLflow's model metadata, not scikit-learn, matplotlib or the data package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
from mlflow.models import Model

from solar_mlops import features
from solar_mlops.intervals import Intervals
from solar_mlops.site import Site

# Output may exceed capacity briefly (cloud enhancement), never by this much.
MAX_OUTPUT_RATIO = 1.2
BOOSTER_FILE = "model.lgb"  # what mlflow.lightgbm writes inside the model folder
# The spread boosters, saved as the flavour's extra files (mlflow.lightgbm's layout).
SPREAD_FILES = ("spread_lower.lgb", "spread_upper.lgb")
EXTRA_FILES_DIR = "extra_files"
_ELEVATION = features.FEATURE_NAMES.index("solar_elevation")


@dataclass
class PowerModel:
    """A booster plus the site facts needed to turn its output into watts, and the
    quantile model around it (None for versions trained before quantiles existed)."""

    booster: lgb.Booster
    site: Site
    intervals: Intervals | None = None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """AC power in watts for each row of a features frame."""
        return self.predict_array(frame[list(features.FEATURE_NAMES)].to_numpy(dtype="float64"))

    def predict_array(self, values: np.ndarray) -> np.ndarray:
        """AC power in watts for an (n, len(FEATURE_NAMES)) array: zero when the sun is
        down, never negative, never above 120 % of capacity."""
        raw = self.booster.predict(values, num_threads=1)
        power = np.clip(raw, 0.0, MAX_OUTPUT_RATIO * self.site.capacity_w)
        return np.where(values[:, _ELEVATION] > 0, power, 0.0)

    def quantiles(self, frame: pd.DataFrame, power: np.ndarray) -> np.ndarray:
        """``quantiles_array`` for a features frame, from a model that has quantiles."""
        values = frame[list(features.FEATURE_NAMES)].to_numpy(dtype="float64")
        found = self.quantiles_array(values, power)
        if found is None:
            raise ValueError("this model version has no quantiles: it predates them")
        return found

    def quantiles_array(self, values: np.ndarray, power: np.ndarray) -> np.ndarray | None:
        """An (n, levels) array of quantiles in watts around ``power`` (what
        ``predict_array`` returned for ``values``), held to the same bounds; None when
        the model has no quantiles."""
        if self.intervals is None:
            return None
        bounded = self.intervals.quantiles(
            values, power, 0.0, MAX_OUTPUT_RATIO * self.site.capacity_w
        )
        bounded[values[:, _ELEVATION] <= 0] = 0.0
        return bounded


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, rebuilt: the model plus what it is and where it came from."""

    model: PowerModel
    name: str
    version: str
    run_id: str
    metadata: dict[str, object]


def download_version(name: str, version: str, tracking_uri: str, dst: Path) -> Path:
    """Download one registered version's model folder from the MLflow at ``tracking_uri``.

    MLflow resolves ``models:/`` and the logged model behind it through its process-wide
    URIs, whatever URI is passed: they are pointed at this MLflow first, so a process
    that trained into one MLflow and loads from another fetches from the right one.
    """
    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        f"models:/{name}/{version}",
        dst_path=str(dst),
        tracking_uri=tracking_uri,
        registry_uri=tracking_uri,
    )
    return Path(local)


def load_model_dir(path: Path, name: str, version: str, run_id: str) -> LoadedModel:
    """Rebuild a model from a downloaded (or cached) MLflow model folder, refusing one
    trained on features this code does not build."""
    metadata = Model.load(str(path)).metadata or {}
    features.check_schema(str(metadata.get("feature_schema_hash")), f"{name} v{version}")
    booster = lgb.Booster(model_file=str(path / BOOSTER_FILE))
    site = Site(**metadata["site"])
    model = PowerModel(booster, site, _load_intervals(path, metadata))
    return LoadedModel(model, name, version, run_id, metadata)


def _load_intervals(path: Path, metadata: dict[str, object]) -> Intervals | None:
    calibration = metadata.get("intervals")
    if not isinstance(calibration, dict):
        return None
    lower, upper = (
        lgb.Booster(model_file=str(path / EXTRA_FILES_DIR / file)) for file in SPREAD_FILES
    )
    return Intervals(
        lower=lower,
        upper=upper,
        levels=tuple(calibration["levels"]),
        offsets=tuple(calibration["offsets"]),
        min_spread_w=float(calibration["min_spread_w"]),
    )

"""Shared fixtures: the real dataset (loaded once) and small synthetic frames."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiers

from solar_mlops.data import TimeWindow
from solar_mlops.pipeline import TrainOutcome, register_candidate
from solar_mlops.predictor import PowerModel
from solar_mlops.registry import Registry
from solar_mlops.site import Site
from solar_mlops.training import Prepared, TrainingConfig, TrainingResult, prepare, train


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture of the test is set up, so module-scoped servers are checked too.
    tiers.enter(item)


REPO = Path(__file__).resolve().parents[1]

# Fast settings for tests: the tuned defaults, no grid search, no backtest.
FAST = TrainingConfig(tune=False, backtest=False)


@pytest.fixture(scope="session")
def site() -> Site:
    return Site()


@pytest.fixture(scope="session")
def prepared(site: Site) -> Prepared:
    return prepare(site)


@pytest.fixture(scope="session")
def trained(prepared: Prepared, request: pytest.FixtureRequest) -> TrainingResult:
    """The model trained with ``FAST``, once for all the pytest processes of a run (make
    test runs one per tier): pytest's cache keeps it under a key made of the package's
    code, uv.lock and the settings, so any change to what training depends on trains
    again."""
    digest = hashlib.sha256(repr(FAST).encode())
    for path in [REPO / "uv.lock", *sorted((REPO / "app" / "solar_mlops").rglob("*.py"))]:
        digest.update(path.read_bytes())
    cached = request.config.cache.mkdir("trained-model") / f"{digest.hexdigest()}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError):
        return pickle.loads(cached.read_bytes())
    result = train(FAST, prepared)
    # Written whole, then renamed: a process reading meanwhile never sees half a file.
    partial = cached.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(pickle.dumps(result))
    partial.replace(cached)
    return result


@pytest.fixture(scope="session")
def model(trained: TrainingResult) -> PowerModel:
    return trained.model


def weather_frame(
    start: str = "2013-06-21 00:00",
    periods: int = 48,
    ghi: float | np.ndarray | None = None,
    temp_air: float = 20.0,
    tz: str = "Etc/GMT+7",
) -> pd.DataFrame:
    """A 30-minute weather series; by default a clear-ish bell-shaped day."""
    index = pd.date_range(start, periods=periods, freq="30min", tz=tz, name="time")
    if ghi is None:
        hours = index.hour + index.minute / 60
        ghi = np.clip(1000 * np.sin(np.pi * (hours - 6) / 13), 0, None)
    return pd.DataFrame({"ghi": ghi, "temp_air": temp_air}, index=index)


SUMMER_2013 = TimeWindow("2013-06-01", "2013-06-30")


@pytest.fixture(scope="session")
def embedded_registry(
    tmp_path_factory: pytest.TempPathFactory, prepared: Prepared, trained: TrainingResult
) -> tuple[str, TrainOutcome]:
    """A SQLite-backed MLflow registry (no server) with version 1 as champion.

    MLflow puts artifacts of a SQLite store under ./mlruns, so training runs from the
    registry's own folder.
    """
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with contextlib.chdir(root):
        outcome = register_candidate(Registry(tracking_uri=uri), trained, FAST, prepared=prepared)
    return uri, outcome

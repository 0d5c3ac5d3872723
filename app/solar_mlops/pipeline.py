"""The registry-facing jobs: train -> register -> gate, evaluate a version, promote."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from solar_mlops.evaluation import MODEL, comparison
from solar_mlops.gate import DEFAULT_MARGIN, Coverage, GateDecision, decide
from solar_mlops.predictor import PowerModel
from solar_mlops.probabilistic import coverage
from solar_mlops.registry import CHAMPION, Registry
from solar_mlops.training import (
    Prepared,
    Progress,
    TrainingConfig,
    TrainingResult,
    fit_pvwatts,
    holdout_predictions,
    prepare_for,
    train,
)


@dataclass(frozen=True)
class TrainOutcome:
    version: ModelVersion
    result: TrainingResult
    decision: GateDecision | None


def train_and_register(
    registry: Registry,
    config: TrainingConfig | None = None,
    margin: float = DEFAULT_MARGIN,
    gate: bool = True,
    prepared: Prepared | None = None,
    progress: Progress = lambda _: None,
) -> TrainOutcome:
    """Train a candidate, register it as ``challenger`` and, unless told not to, let
    the gate decide whether it becomes ``champion``."""
    config = config or TrainingConfig()
    prepared = prepare_for(config, prepared)
    result = train(config, prepared, progress)
    return register_candidate(registry, result, config, margin, gate, prepared, progress)


def register_candidate(
    registry: Registry,
    result: TrainingResult,
    config: TrainingConfig,
    margin: float = DEFAULT_MARGIN,
    gate: bool = True,
    prepared: Prepared | None = None,
    progress: Progress = lambda _: None,
) -> TrainOutcome:
    """Register a model trained with ``config`` as ``challenger`` and, unless told not
    to, let the gate decide whether it becomes ``champion``."""
    progress(f"logging run and registering a new version of '{registry.name}'")
    version = registry.log_candidate(result, config)
    decision = None
    if gate:
        decision = run_gate(registry, str(version.version), config, margin, prepared, progress)
    return TrainOutcome(version=version, result=result, decision=decision)


def evaluate_version(
    registry: Registry,
    version_or_alias: str,
    config: TrainingConfig | None = None,
    prepared: Prepared | None = None,
) -> pd.DataFrame:
    """A registered version against both baselines on the holdout, as in training."""
    config = config or TrainingConfig()
    prepared = prepare_for(config, prepared)
    loaded = registry.load(version_or_alias)
    predictions = holdout_predictions(
        prepared, config.test, loaded.model, fit_pvwatts(prepared, config.train)
    )
    return comparison(predictions, prepared.site.capacity_w)


def holdout_coverage(
    model: PowerModel, prepared: Prepared, config: TrainingConfig
) -> Coverage | None:
    """How often the holdout's measured power fell between the model's outermost
    quantiles; None for a model without quantiles."""
    if model.intervals is None:
        return None
    rows = prepared.rows(config.test)
    features = prepared.features[rows]
    quantiles = model.quantiles(features, model.predict(features))
    measured = prepared.target[rows].to_numpy()
    levels = model.intervals.levels
    return Coverage(
        observed=coverage(measured, quantiles[:, 0], quantiles[:, -1]),
        nominal=levels[-1] - levels[0],
    )


def run_gate(
    registry: Registry,
    version: str,
    config: TrainingConfig | None = None,
    margin: float = DEFAULT_MARGIN,
    prepared: Prepared | None = None,
    progress: Progress = lambda _: None,
) -> GateDecision:
    """Score challenger and champion on the same holdout rows, decide, record the
    evidence on the challenger either way, and promote a winner."""
    config = config or TrainingConfig()
    prepared = prepare_for(config, prepared)
    champion = registry.alias(CHAMPION)
    rows = prepared.rows(config.test)
    pvwatts = fit_pvwatts(prepared, config.train)

    def holdout_nrmse(model: PowerModel) -> float:
        predictions = holdout_predictions(prepared, config.test, model, pvwatts)
        return float(comparison(predictions, prepared.site.capacity_w).loc[MODEL, "nrmse"])

    progress(f"gate: scoring v{version} and champion v{champion} on {config.test}")
    challenger = registry.load(version).model
    decision = decide(
        challenger_version=version,
        challenger_nrmse=holdout_nrmse(challenger),
        champion_version=champion,
        champion_nrmse=(
            holdout_nrmse(registry.load(champion).model) if champion is not None else None
        ),
        margin=margin,
        holdout_window=str(config.test),
        holdout_rows=int(rows.sum()),
        coverage=holdout_coverage(challenger, prepared, config),
    )
    registry.record_gate(decision)
    if decision.promote:
        registry.make_champion(version)
    progress(f"gate: v{version} {decision.verdict}: {decision.reason}")
    return decision

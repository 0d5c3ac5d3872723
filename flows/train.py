"""train: train a candidate, register it as challenger, and let the gate decide."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.common import announce_promotion, gate_artifact, open_registry
from flows.settings import FlowSettings
from solar_mlops.data import TimeWindow
from solar_mlops.gate import DEFAULT_MARGIN
from solar_mlops.pipeline import train_and_register
from solar_mlops.training import TrainingConfig


@flow(name="train", timeout_seconds=4 * 3600)
def train(
    train_window: str = "2011-01-01..2012-12-31",
    test_window: str = "2013-01-01..2013-12-31",
    tune: bool = True,
    backtest: bool = True,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, object]:
    """What ``solar train`` does, as a flow run: the gate's evidence becomes an artifact,
    and a promotion emits ``solar.model.promoted`` (which triggers deploy)."""
    logger = get_run_logger()
    config = TrainingConfig(
        train=TimeWindow.parse(train_window),
        test=TimeWindow.parse(test_window),
        tune=tune,
        backtest=backtest,
    )
    registry = open_registry(FlowSettings())
    outcome = train_and_register(registry, config, margin=margin, progress=logger.info)
    decision = outcome.decision
    assert decision is not None  # the gate always runs here
    gate_artifact(decision, f"Trained on {config.train}, tuned: {tune}, backtest: {backtest}.")
    event = announce_promotion(registry, decision)
    return {"version": decision.challenger_version, **decision.as_dict(), "event": event}

"""retrain: on ``solar.drift.detected``, train a challenger on the data up to the drifted
window and put it to the gate on the data from that window on, leaving out every window
the monitor found with faulty inputs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from prefect import flow, get_run_logger

from flows.common import announce_promotion, champion, gate_artifact, open_registry
from flows.settings import FlowSettings
from solar_mlops import monitoring
from solar_mlops.data import TimeWindow
from solar_mlops.gate import DEFAULT_MARGIN
from solar_mlops.pipeline import train_and_register
from solar_mlops.registry import Registry
from solar_mlops.site import Site
from solar_mlops.training import TrainingConfig


def challenger_config(
    registry: Registry, version: str, window_start: datetime, tune: bool, backtest: bool
) -> TrainingConfig:
    """Train from where the champion's training began to the day before the drifted
    window; the holdout runs from the window's first day to the end of the champion's
    holdout, data neither model has seen (unless the window lies in the champion's own
    training years). Windows with faulty inputs are in neither. Dates are the site's
    calendar days."""
    trained, tested = registry.data_windows(version)
    start = pd.Timestamp(window_start)
    start = start.tz_localize("UTC") if start.tz is None else start
    site = Site()
    first_day = start.tz_convert(site.timezone).tz_localize(None).normalize()
    if first_day > pd.Timestamp(tested.end):
        raise ValueError(
            f"the drifted window starts on {first_day:%Y-%m-%d}, after the data the gate "
            f"can judge on (to {tested.end})"
        )
    train_end = first_day - timedelta(days=1)
    return TrainingConfig(
        train=TimeWindow(trained.start, f"{train_end:%Y-%m-%d}"),
        test=TimeWindow(f"{first_day:%Y-%m-%d}", tested.end),
        tune=tune,
        backtest=backtest,
        exclude=monitoring.data_fault_windows(registry, site),
    )


@flow(name="retrain", timeout_seconds=4 * 3600)
def retrain(
    window_start: datetime,
    window_end: datetime,
    margin: float = DEFAULT_MARGIN,
    tune: bool = True,
    backtest: bool = True,
) -> dict[str, object]:
    """Train, register and gate a challenger. A winner emits ``solar.model.promoted``
    (which triggers deploy); a loser leaves the gate's reason as an artifact, and no
    event."""
    logger = get_run_logger()
    registry = open_registry(FlowSettings())
    current = champion(registry)
    config = challenger_config(registry, current, window_start, tune, backtest)
    logger.info(
        "drift in %s .. %s against v%s: training on %s, gate on %s, leaving out %s",
        window_start, window_end, current, config.train, config.test, config.excluded,
    )  # fmt: skip
    outcome = train_and_register(registry, config, margin=margin, progress=logger.info)
    decision = outcome.decision
    assert decision is not None  # the gate always runs here
    context = (
        f"Retrained after drift in {window_start} .. {window_end}: trained on "
        f"{config.train}, leaving out the windows with faulty inputs ({config.excluded}); "
        f"champion was v{current}."
    )
    if not decision.promote:
        context += " Not promoted: the champion stays, and nothing is deployed."
        logger.warning("v%s not promoted: %s", decision.challenger_version, decision.reason)
    gate_artifact(decision, context)
    event = announce_promotion(registry, decision)
    return {"version": decision.challenger_version, **decision.as_dict(), "event": event}

"""monitor_drift: judge the last days of live traffic against the champion's training
years, publish the figures, and raise ``solar.drift.detected`` when it drifted."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from flows.common import DRIFT_EVENT, announce, champion, open_registry, window
from flows.settings import FlowSettings
from solar_mlops import drift
from solar_mlops.data import load_dataset
from solar_mlops.registry import Registry
from solar_mlops.service import store

# Drift reports are runs of their own MLflow experiment: its UI shows the HTML.
REPORT_EXPERIMENT = "solar-drift"


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def latest_prediction(engine: Engine) -> datetime | None:
    """The newest predicted time in the store (None when it holds none, or has no table
    yet: the service creates it with its first write)."""
    try:
        if not sa.inspect(engine).has_table(store.predictions.name):
            return None
        with engine.connect() as connection:
            latest = connection.execute(sa.select(sa.func.max(store.predictions.c.time))).scalar()
    except sa.exc.SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc  # the driver's words, without the SQL
        raise store.StoreError(f"cannot read the prediction store at {where}: {cause}") from exc
    if latest is None:
        return None
    # SQLite hands back naive UTC wall times, PostgreSQL instants in the session's zone.
    stamp = pd.Timestamp(latest)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def read_window(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return store.recent_window(engine, start, end)


def promised_nrmse(registry: Registry, version: str) -> tuple[float, str]:
    """What the version promised: its rolling-origin backtest's mean nRMSE when it was
    trained with one, else its holdout nRMSE (both logged by training)."""
    client = registry.client
    run_id = client.get_model_version(registry.name, version).run_id
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    if "evaluation/backtest_monthly.csv" in logged:
        local = client.download_artifacts(run_id, "evaluation/backtest_monthly.csv")
        return float(pd.read_csv(local)["model_nrmse"].mean()), "rolling-origin backtest"
    metrics = client.get_run(run_id).data.metrics
    return float(metrics["holdout_model_nrmse"]), "holdout"


@task(timeout_seconds=600, cache_policy=NO_CACHE)
def judge(registry: Registry, version: str, recent: pd.DataFrame) -> drift.DriftResult:
    """The champion's training years as the reference, its promise, and the verdict."""
    loaded = registry.load(version)
    site = loaded.model.site
    trained_on = window(
        registry.client.get_model_version(registry.name, version).tags["data.train_window"]
    )
    dataset = load_dataset(site)
    reference = drift.training_reference(
        dataset[trained_on.mask(pd.DatetimeIndex(dataset.index))], loaded.model
    )
    promised, source = promised_nrmse(registry, version)
    get_run_logger().info(
        "v%s trained on %s promises %.2f%% nRMSE (%s)", version, trained_on, 100 * promised, source
    )
    return drift.monitor(recent[list(drift.COLUMNS)], reference, promised, site=site)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def keep_report(registry: Registry, version: str, result: drift.DriftResult) -> str:
    """Log the Evidently report and the scores as an MLflow run; return where to see it."""
    client = registry.client
    experiment = client.get_experiment_by_name(REPORT_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(REPORT_EXPERIMENT)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"{result.window_start:%Y-%m-%d}..{result.window_end:%Y-%m-%d}",
        tags={"model_version": version, "drift": str(result.drift), "reason": result.reason},
    )
    for name, value in {**result.scores, "nrmse": result.nrmse}.items():
        if math.isfinite(value):  # NaN: not enough data for that figure
            client.log_metric(run.info.run_id, name, value)
    client.log_text(run.info.run_id, result.report_html, "evidently-report.html")
    client.set_terminated(run.info.run_id)
    return (
        f"{registry.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run.info.run_id}"
    )


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def push(result: drift.DriftResult, gateway: str, version: str) -> None:
    drift.push_metrics(result, gateway, model_version=version)


def summary(result: drift.DriftResult, version: str, versions: list[str], report: str) -> str:
    """The run's artifact: the verdict, the figures, and where the full report is."""
    thresholds = drift.DriftConfig().thresholds
    rows = "\n".join(
        f"| {name} | {score:.3f} | {thresholds[name]} | "
        f"{'drift' if name in result.drifted else ''} |"
        for name, score in result.scores.items()
    )
    verdict = "drift" if result.drift else "no drift"
    return f"""# {verdict}: {result.window_start} .. {result.window_end}

Champion v{version} (traffic served by v{", v".join(versions)}).

**Reason:** {result.reason}

| ratio | score | threshold | |
| --- | --- | --- | --- |
{rows}

Rows: {result.day_rows} daytime, {result.night_rows} night, {result.actual_rows} with actuals.
nRMSE {result.nrmse:.2%}, peak ratio {result.peak_ratio:.2f}.

Evidently report: [{report}]({report})
"""


@flow(name="monitor_drift", timeout_seconds=1200)
def monitor_drift(end: datetime | None = None, days: int = 7) -> dict[str, object]:
    """Judge the ``days`` before ``end`` (default: the newest prediction in the store,
    since replayed traffic carries the data's own times) against the champion."""
    logger = get_run_logger()
    settings = FlowSettings()
    settings.require("mlflow_tracking_uri", "prediction_store_url", "pushgateway_url")
    registry = open_registry(settings)
    engine = store.connect(settings.prediction_store_url)
    if end is None:
        latest = latest_prediction(engine)
        if latest is None:
            logger.warning("the prediction store holds no predictions yet: nothing to judge")
            return {"drift": False, "reason": "no predictions yet", "event": None}
        end = latest + timedelta(seconds=1)  # the window's end is exclusive
    start = end - timedelta(days=days)
    recent = read_window(engine, start, end)
    if recent.empty:
        raise drift.DriftInputError(f"the prediction store has no predictions in [{start}, {end})")
    version = champion(registry)
    result = judge(registry, version, recent)
    logger.info("window %s .. %s: %s", result.window_start, result.window_end, result.reason)
    report = keep_report(registry, version, result)
    versions = sorted(recent["model_version"].unique())
    create_markdown_artifact(
        markdown=summary(result, version, versions, report),
        key="solar-drift",
        description=f"{'drift' if result.drift else 'no drift'} on the week to {result.window_end}",
    )
    event = None
    if result.drift:
        # The event first: retraining matters more than a dashboard figure.
        event = announce(
            registry,
            DRIFT_EVENT,
            version,
            {
                "window_start": result.window_start.isoformat(),
                "window_end": result.window_end.isoformat(),
                "reasons": result.reason,
                "drifted": result.drifted,
                "data_drift": result.data_drift,
                "performance_drift": result.performance_drift,
                "scores": result.scores,
                # JSON has no NaN; None says "not enough data".
                "nrmse": result.nrmse if math.isfinite(result.nrmse) else None,
                "peak_ratio": result.peak_ratio if math.isfinite(result.peak_ratio) else None,
            },
        )
    push(result, settings.pushgateway_url, version)
    return {"drift": result.drift, "reason": result.reason, "report": report, "event": event}

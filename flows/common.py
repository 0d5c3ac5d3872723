"""What several flows share: the registry behind a reachability check, the model's
events, and the evidence the gate leaves."""

from __future__ import annotations

from typing import Any

import httpx
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows.settings import FlowSettings
from solar_mlops.errors import RegistryError
from solar_mlops.gate import GateDecision
from solar_mlops.registry import CHAMPION, Registry

# One resource per registered model: triggers match on it (flows/prefect.yaml).
RESOURCE_PREFIX = "solar-mlops.model."
DRIFT_EVENT = "solar.drift.detected"
DATA_FAULT_EVENT = "solar.data.fault"
PROMOTED_EVENT = "solar.model.promoted"


class MlflowUnreachableError(RegistryError):
    """The tracking server did not answer: nothing was read or changed."""


# A restarting MLflow answers again within seconds; a longer outage fails the run with
# the reason, and the next scheduled or triggered run tries again.
@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)  # a health check is never cached
def check_mlflow(uri: str) -> None:
    """Raise MlflowUnreachableError unless the tracking server answers its health check."""
    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise MlflowUnreachableError(
            f"MLflow at {uri} is unreachable or unhealthy ({exc}); nothing was read or changed"
        ) from exc


def open_registry(settings: FlowSettings) -> Registry:
    """The registry, once its tracking server (when it is one) has answered."""
    settings.require("mlflow_tracking_uri")
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        check_mlflow(uri)
    return Registry(settings.model_name, tracking_uri=uri)


def require_version(registry: Registry, version_or_alias: str) -> str:
    """The version number, or a RegistryError saying the registry has no such version."""
    version = registry.resolve(version_or_alias)
    names = [str(v.version) for v in registry.versions()]
    if version not in names:
        raise RegistryError(
            f"model '{registry.name}' has no version {version} at {registry.tracking_uri} "
            f"(registered: {', '.join(names) or 'none'})"
        )
    return version


def champion(registry: Registry) -> str:
    version = registry.alias(CHAMPION)
    if version is None:
        raise RegistryError(
            f"model '{registry.name}' has no champion at {registry.tracking_uri}: "
            "run the train flow first"
        )
    return version


def model_resource(registry: Registry, version: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{registry.name}",
        "prefect.resource.name": registry.name,
        "solar-mlops.model.version": version,
    }


def announce(registry: Registry, event: str, version: str, payload: dict[str, Any]) -> str:
    """Emit one event about the model and return its id for the run's result."""
    emitted = emit_event(event=event, resource=model_resource(registry, version), payload=payload)
    if emitted is None:
        raise RuntimeError(f"Prefect did not emit {event}: is PREFECT_API_URL set?")
    get_run_logger().info("emitted %s (id %s): %s", event, emitted.id, payload)
    return str(emitted.id)


def announce_promotion(registry: Registry, decision: GateDecision) -> str | None:
    """On a promotion, ``solar.model.promoted`` (which triggers deploy); else nothing."""
    if not decision.promote:
        return None
    payload = {
        "version": decision.challenger_version,
        "previous": decision.champion_version,
        "reason": decision.reason,
    }
    return announce(registry, PROMOTED_EVENT, decision.challenger_version, payload)


def gate_artifact(decision: GateDecision, context: str = "") -> None:
    """The gate's evidence as a markdown artifact of the run (also kept in MLflow)."""

    def score(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        f"# Gate: v{decision.challenger_version} {decision.verdict}",
        "",
        context,
        "",
        f"**Reason:** {decision.reason}",
        "",
        "| | version | holdout nRMSE |",
        "| --- | --- | --- |",
        f"| challenger | {decision.challenger_version} | {score(decision.challenger_nrmse)} |",
        f"| champion | {decision.champion_version or '-'} | {score(decision.champion_nrmse)} |",
        "",
        f"Holdout {decision.holdout_window} ({decision.holdout_rows} daytime rows), "
        f"margin {decision.margin:.2%}.",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key="solar-gate",
        description=f"v{decision.challenger_version} {decision.verdict}",
    )

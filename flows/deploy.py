"""deploy: blue-green rollout of one registered version (playbooks/deploy_model.yml)."""

from __future__ import annotations

from typing import Any, TypedDict

from prefect import Flow, flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.flows import FlowStateHook
from prefect.logging.loggers import flow_run_logger

from flows.common import open_registry, require_version
from flows.settings import FlowSettings
from solar_mlops.ops.playbook_runner import (
    PlaybookFailedError,
    PlaybookResult,
    deploy_model,
    log_event,
)
from solar_mlops.ops.rollout_metrics import push_outcome

# Ansible is stopped before the flow's own timeout, so the reason names the task in flight.
PLAYBOOK_TIMEOUT_S = 1500


def actor() -> str:
    return f"prefect/flow-run/{runtime.flow_run.name}"


def playbook_artifact(title: str, result: PlaybookResult) -> None:
    """The run's outcome and each host's recap, with where the runner's files are."""
    rows = "\n".join(
        f"| {host} | " + " | ".join(str(v) for v in vars(stats).values()) + " |"
        for host, stats in result.stats.items()
    )
    header = "| host | ok | changed | failed | unreachable | skipped | rescued | ignored |"
    create_markdown_artifact(
        markdown=f"""# {title}

{result.reason or "succeeded"}

{header}
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

Runner artifacts (stdout, job_events/): `{result.artifacts}` on the worker.
""",
        key="solar-playbook",
        description=title,
    )


class OutcomeHooks(TypedDict):
    """The ``flow`` decorator's hooks for every way a run ends."""

    on_completion: list[FlowStateHook[..., Any]]
    on_failure: list[FlowStateHook[..., Any]]
    on_crashed: list[FlowStateHook[..., Any]]
    on_cancellation: list[FlowStateHook[..., Any]]


def outcome_hooks(action: str) -> OutcomeHooks:
    """State hooks pushing whether the run failed (``rollout_metrics``), for every way a
    run ends: a refused version, a timeout and a cancellation reach the alert too."""

    def push(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
        logger = flow_run_logger(flow_run, flow)
        gateway = FlowSettings().pushgateway_url
        if not gateway:
            logger.warning("SOLAR_PUSHGATEWAY_URL is not set: the %s outcome is not pushed", action)
            return
        version = str(flow_run.parameters.get("version", ""))
        try:
            push_outcome(gateway, action, failed=not state.is_completed(), version=version)
        except OSError as exc:  # the outcome stands; only its metric is missing
            logger.warning("could not push the %s outcome to %s: %s", action, gateway, exc)

    return OutcomeHooks(
        on_completion=[push], on_failure=[push], on_crashed=[push], on_cancellation=[push]
    )


@flow(name="deploy", timeout_seconds=1800, **outcome_hooks("deploy"))
def deploy(version: str | int, reason: str = "") -> dict[str, object]:
    """Check that ``version`` is registered, then run the blue-green playbook with its
    events in this run's log. A failed rollout fails the run with the playbook's reason
    and is not retried: the playbook left traffic where it was, and the same version
    would fail the same way."""
    logger = get_run_logger()
    settings = FlowSettings()
    registry = open_registry(settings)
    # `prefect deployment run -p version=7` sends a number; an alias is a string.
    number = require_version(registry, str(version))
    logger.info("deploying %s v%s (%s)", registry.name, number, reason or "no reason given")
    try:
        result = deploy_model(
            number,
            actor=actor(),
            reason=reason,
            on_event=lambda event: log_event(event, logger),
            artifacts_dir=settings.ansible_artifacts_dir,
            timeout=PLAYBOOK_TIMEOUT_S,
        )
    except PlaybookFailedError as exc:
        playbook_artifact(f"deploy v{number} failed", exc.result)
        raise
    playbook_artifact(f"deployed v{number}", result)
    return {"version": number, "status": result.status, "artifacts": str(result.artifacts)}

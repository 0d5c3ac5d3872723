"""deploy: blue-green rollout of one registered version (playbooks/deploy_model.yml)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.common import open_registry, require_version
from flows.settings import FlowSettings
from solar_mlops.errors import PlaybookFailedError
from solar_mlops.playbook_runner import PlaybookResult, deploy_model, log_event

# Ansible is stopped before the flow's own timeout, so the reason names the task in flight.
PLAYBOOK_TIMEOUT_S = 1500


def actor() -> str:
    return f"prefect/flow-run/{flow_run.name}"


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


@flow(name="deploy", timeout_seconds=1800)
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

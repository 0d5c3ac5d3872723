"""rollback: send traffic back to the other colour (playbooks/rollback.yml)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.deploy import PLAYBOOK_TIMEOUT_S, actor, outcome_hooks, playbook_artifact
from flows.settings import FlowSettings
from solar_mlops.ops import playbook_runner
from solar_mlops.ops.playbook_runner import PlaybookFailedError


@flow(name="rollback", timeout_seconds=1800, **outcome_hooks("rollback"))
def rollback(reason: str = "") -> dict[str, object]:
    """Flip traffic back to the colour that served before; fails with the playbook's
    reason (never retried: a rollback that failed needs an operator's look)."""
    logger = get_run_logger()
    settings = FlowSettings()
    try:
        result = playbook_runner.rollback(
            actor=actor(),
            reason=reason,
            on_event=lambda event: playbook_runner.log_event(event, logger),
            artifacts_dir=settings.ansible_artifacts_dir,
            timeout=PLAYBOOK_TIMEOUT_S,
        )
    except PlaybookFailedError as exc:
        playbook_artifact("rollback failed", exc.result)
        raise
    playbook_artifact("rolled back", result)
    return {"status": result.status, "artifacts": str(result.artifacts)}

"""The outcome of the last deploy and the last rollback, pushed to the Pushgateway.

A failed rollout leaves both colours as they were, so no serving metric moves: without
this push the failure would show nowhere but the flow run. Each action (``deploy``,
``rollback``) is one Pushgateway group of the job ``solar_mlops_deploy``, replaced at
each run: the alert ``DeployFailed`` fires while the last run of an action failed and
clears when the next one succeeds.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

JOB = "solar_mlops_deploy"
ACTIONS = ("deploy", "rollback")


def push_outcome(gateway: str, action: str, failed: bool, version: str = "") -> None:
    """Replace ``action``'s group with this run's outcome (``version``: what a deploy
    tried to roll out; empty for a rollback)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    registry = CollectorRegistry()
    Gauge(
        "solar_deploy_failed",
        "1 when the last run of this action failed (traffic stayed where it was), else 0",
        ["version"],
        registry=registry,
    ).labels(version=version).set(int(failed))
    Gauge(
        "solar_deploy_last_run_timestamp_seconds",
        "when the last run of this action ended",
        registry=registry,
    ).set(time.time())
    push_to_gateway(
        gateway, job=JOB, grouping_key={"action": action}, registry=registry, timeout=10
    )

"""A firing drift alert reaches Prefect and starts exactly one ``retrain`` run.

All real, on 127.0.0.1: MLflow holding monitor_drift's announcements, a Pushgateway
holding its figures, Debian's Prometheus evaluating the prometheus role's own model
rules, Debian's Alertmanager routing ``category="drift"`` to the receiver as the
platform does (inventory/shared/platform.yml), the receiver under uvicorn, and Prefect's
server with flows/prefect.yaml's deployments. No worker runs: a started run stays
scheduled, so the runs counted are exactly those created.

Two timings are shortened, and only those: the rules' ``for:`` (their promtool tests
check it) and Alertmanager's waits, so that within seconds the receiver gets the first
notification, the second drift alert joining the group, and repeats.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prometheus_client.parser import text_string_to_metric_families
from servers import (
    REPO,
    alertmanager,
    free_port,
    mlflow_server,
    prefect_server,
    prometheus_server,
    pushgateway,
    register_flows,
    running,
    venv_bin,
)
from test_monitoring import verdict

from flows.common import DRIFT_EVENT, model_resource
from flows.monitor_drift import event_payload
from solar_mlops import drift_metrics, monitoring
from solar_mlops.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

TOKEN = "test-alert-webhook-token"
RULES = REPO / "roles" / "prometheus" / "files" / "rules" / "solar-model.rules.yml"
WINDOW_END = "2013-10-08T07:00:00+00:00"


@dataclass(frozen=True)
class Stack:
    prefect: str
    mlflow: str
    gateway: str
    alertmanager: str
    webhook: str


def rules_without_for(root: Path) -> Path:
    """The role's model rules, each firing at its first evaluation."""
    spec = yaml.safe_load(RULES.read_text())
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = root / "solar-model.rules.yml"
    path.write_text(yaml.safe_dump(spec))
    return path


def alertmanager_config(webhook: str) -> dict[str, object]:
    """The platform's drift route, with waits of seconds instead of minutes."""
    return {
        "route": {
            "receiver": "discard",
            "group_by": ["alertname", "job"],
            "routes": [
                {
                    "matchers": ['category="drift"'],
                    "receiver": "retrain",
                    "group_by": ["category"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "3s",
                }
            ],
        },
        "receivers": [
            {"name": "discard"},
            {
                "name": "retrain",
                "webhook_configs": [
                    {
                        "url": f"{webhook}/alerts",
                        "send_resolved": False,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                    }
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("alerting")
    with (
        prefect_server(root) as api,
        mlflow_server(root / "mlflow") as mlflow,
        pushgateway(root) as gateway,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("SOLAR_MLOPS_HOME", str(REPO))
        register_flows(api, root / "client-home", "solar-mlops")
        port = free_port()
        webhook = f"http://127.0.0.1:{port}"
        env = {
            "SOLAR_ALERT_WEBHOOK_TOKEN": TOKEN,
            "MLFLOW_TRACKING_URI": mlflow,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "webhook-home"),
            "DO_NOT_TRACK": "1",
        }
        command = [
            venv_bin("uvicorn"), "flows.alert_webhook:app", "--app-dir", str(REPO),
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        with (
            running(command, f"{webhook}/health", root / "webhook.log", 60, env),
            alertmanager(root / "alertmanager", alertmanager_config(webhook)) as manager,
        ):
            prometheus_port = free_port()
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules_without_for(root))],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [manager.removeprefix("http://")]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [gateway.removeprefix("http://")]}],
                    }
                ],
            }
            with prometheus_server(root / "prometheus", config, prometheus_port):
                yield Stack(api, mlflow, gateway, manager, webhook)


def retrain_runs(api: str) -> list[dict[str, Any]]:
    deployment = httpx.get(f"{api}/deployments/name/retrain/retrain").raise_for_status().json()
    body = {"deployments": {"id": {"any_": [deployment["id"]]}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body).raise_for_status().json()


def webhook_notifications(alertmanager_url: str) -> float:
    """Notifications Alertmanager has delivered to webhooks (failed ones not counted)."""
    text = httpx.get(f"{alertmanager_url}/metrics").text
    sent = failed = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("integration") != "webhook":
                continue
            if sample.name == "alertmanager_notifications_total":
                sent += sample.value
            elif sample.name == "alertmanager_notifications_failed_total":
                failed += sample.value
    return sent - failed


def wait_for_notifications(stack: Stack, more_than: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = webhook_notifications(stack.alertmanager)
        if count > more_than:
            return count
        time.sleep(0.5)
    raise AssertionError(f"Alertmanager delivered {more_than} notifications and no more")


def announce(stack: Stack, window_end: str) -> str:
    """What monitor_drift does on drift with its event trigger off: record the
    announcement, push the figures (data drift only)."""
    event_id = str(uuid.uuid4())
    result = verdict(window_end, drifted=True)
    registry = Registry(tracking_uri=stack.mlflow)
    monitoring.record(registry, "3", result, event_id)
    drift_metrics.push(result, stack.gateway, model_version="3")
    return event_id


def post(stack: Stack, body: dict[str, object], token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{stack.webhook}/alerts", json=body, headers=headers, timeout=30)


def notification(status: str) -> dict[str, object]:
    alert = {
        "status": status,
        "labels": {"alertname": "ModelDataDrift", "category": "drift"},
        "startsAt": "2026-01-01T00:00:00Z",
    }
    return {"status": status, "groupKey": "{}:{}", "alerts": [alert]}


def test_the_receiver_needs_its_token_and_an_announced_drift(stack: Stack) -> None:
    assert post(stack, notification("firing"), token=None).status_code == 401
    assert post(stack, notification("firing"), token="wrong").status_code == 401
    ignored = post(stack, notification("resolved"))
    assert ignored.status_code == 200 and ignored.json()["action"] == "ignored"
    # An alert with no announcement behind it has no window to retrain on.
    refused = post(stack, notification("firing"))
    assert refused.status_code == 409
    assert "holds no drift announcement" in refused.json()["detail"]
    assert retrain_runs(stack.prefect) == []


def test_a_firing_drift_alert_starts_exactly_one_retrain_run(stack: Stack) -> None:
    event_id = announce(stack, WINDOW_END)
    first = wait_for_notifications(stack, more_than=0)
    # Performance drift joins the incident's group: a new notification, the same run.
    result = dataclasses.replace(verdict(WINDOW_END, drifted=True), performance_drift=True)
    drift_metrics.push(result, stack.gateway, model_version="3")
    # Repeats every 3 s: several more deliveries, each finding the run.
    wait_for_notifications(stack, more_than=first + 3)

    runs = retrain_runs(stack.prefect)
    assert len(runs) == 1, runs
    (run,) = runs
    end = pd.Timestamp(WINDOW_END)
    assert pd.Timestamp(run["parameters"]["window_end"]) == end
    assert pd.Timestamp(run["parameters"]["window_start"]) == end - pd.Timedelta(days=7)
    assert run["idempotency_key"] == f"{DRIFT_EVENT} {event_id}"
    assert "alertmanager" in run["tags"]


def test_a_retraining_the_monitors_event_started_is_not_started_again(stack: Stack) -> None:
    """The usual order: monitor_drift's event triggers retrain at once, the alert's
    notifications come minutes later and find that run."""
    later = "2013-10-22T07:00:00+00:00"
    result = dataclasses.replace(verdict(later, drifted=True), performance_drift=True)
    registry = Registry(tracking_uri=stack.mlflow)
    before = {run["id"] for run in retrain_runs(stack.prefect)}
    with temporary_settings(updates={PREFECT_API_URL: stack.prefect}):
        emitted = emit_event(
            event=DRIFT_EVENT,
            resource=model_resource(registry, "3"),
            payload=event_payload(result),
        )
        # Send it now and stop the process's events worker, which stays bound to the
        # server it first met: later tests' events must reach their own server.
        EventsWorker.instance().drain()
    assert emitted is not None
    triggered = wait_for_new_run(stack.prefect, before)
    assert "alertmanager" not in triggered["tags"]

    monitoring.record(registry, "3", result, str(emitted.id))
    drift_metrics.push(result, stack.gateway, model_version="3")
    # Repeats of the firing group, now pointing at the new announcement.
    wait_for_notifications(stack, more_than=webhook_notifications(stack.alertmanager) + 3)

    new = [run for run in retrain_runs(stack.prefect) if run["id"] not in before]
    assert [run["id"] for run in new] == [triggered["id"]]
    assert pd.Timestamp(triggered["parameters"]["window_end"]) == pd.Timestamp(later)


def wait_for_new_run(api: str, known: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [run for run in retrain_runs(api) if run["id"] not in known]
        if new:
            assert len(new) == 1, new
            return new[0]
        time.sleep(0.5)
    raise AssertionError("the drift event's trigger started no retrain run")

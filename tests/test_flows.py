"""The loop on real servers: Prefect (its own lock), MLflow, a Pushgateway and a SQLite
prediction store, with the deployments of flows/prefect.yaml served by a process worker.

A normal week raises no event. A week whose irradiance sensor reads 20 % low raises
exactly one data-fault event (a second look, cooling down, raises none) and starts no
retraining. The next week, a quarter of the array out, raises a drift event, which
triggers retrain through the server's automation; the challenger, trained without the
faulty week, wins the gate, and its promotion triggers deploy, which fails with the
playbook's reason on this machine (no HAProxy here). Failures name their cause: a
missing version, an unreachable MLflow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings
from prometheus_client.parser import text_string_to_metric_families
from servers import (
    REPO,
    free_port,
    mlflow_server,
    prefect_server,
    prefect_worker,
    pushgateway,
    register_flows,
    venv_bin,
)
from sqlalchemy.engine import Engine

from flows.common import DATA_FAULT_EVENT, DRIFT_EVENT, PROMOTED_EVENT
from flows.deploy import deploy
from flows.monitor_drift import monitor_drift
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from solar_mlops import prediction_store
from solar_mlops.data import TimeWindow, load_dataset
from solar_mlops.features import FeatureBuilder
from solar_mlops.registry import CHAMPION, Registry

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

POOL = "solar-mlops"
# Weeks of 2013 that tests/test_drift.py shows quiet, and loud with the sensor 20 % low;
# the week after, with a quarter of the array out.
NORMAL = TimeWindow("2013-06-04", "2013-06-10")
FAULTY = TimeWindow("2013-10-01", "2013-10-07")
OUTAGE = TimeWindow("2013-10-08", "2013-10-14")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Platform:
    api: str
    mlflow: str
    gateway: str
    engine: Engine


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("flows")
    # This machine as load balancer and model server: the deploy playbook runs for real
    # and stops where it needs HAProxy's state, which this machine does not have.
    inventory = root / "hosts.ini"
    inventory.write_text(
        "[lb]\nlocalhost ansible_connection=local "
        f"ansible_python_interpreter={venv_bin('python')}\n[model_servers]\nlocalhost\n"
    )
    with (
        prefect_server(root) as api,
        mlflow_server(root / "mlflow") as mlflow,
        pushgateway(root) as gateway,
        pytest.MonkeyPatch.context() as patch,
    ):
        env = {
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(root / "client-home"),
            "DO_NOT_TRACK": "1",
            "MLFLOW_TRACKING_URI": mlflow,
            "SOLAR_PREDICTION_STORE_URL": f"sqlite:///{root / 'store.db'}",
            "SOLAR_PUSHGATEWAY_URL": gateway,
            "SOLAR_MLOPS_HOME": str(REPO),
            "SOLAR_ANSIBLE_ARTIFACTS_DIR": str(root / "ansible-runs"),
            "ANSIBLE_INVENTORY": str(inventory),
        }
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(REPO)
        register_flows(api, root / "client-home", POOL)
        # The operator's choice for this run: the fast training (no grid search, no
        # backtest), so the retraining takes seconds rather than an hour.
        retrain = deployment(api, "retrain/retrain")
        httpx.patch(
            f"{api}/deployments/{retrain['id']}",
            json={"parameters": {"tune": False, "backtest": False}},
        ).raise_for_status()
        with (
            prefect_worker(root, POOL, env),
            temporary_settings(updates={PREFECT_API_URL: api, PREFECT_HOME: root / "client-home"}),
        ):
            engine = prediction_store.connect(env["SOLAR_PREDICTION_STORE_URL"])
            yield Platform(api, mlflow, gateway, engine)
            engine.dispose()


def deployment(api: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{api}/deployments/name/{name}")
    response.raise_for_status()
    return response.json()


def flow_runs(api: str, name: str) -> list[dict[str, Any]]:
    body = {"deployments": {"id": {"any_": [deployment(api, name)["id"]]}}}
    response = httpx.post(f"{api}/flow_runs/filter", json=body)
    response.raise_for_status()
    return response.json()


def finished_run(
    api: str, name: str, parameter: str, value: str, timeout: float = 240
) -> dict[str, Any]:
    """The first run of deployment ``name`` with that parameter, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in flow_runs(api, name):
            if str(run["parameters"].get(parameter)) == value and run["state_type"] in TERMINAL:
                return run
        time.sleep(1)
    raise AssertionError(f"no finished {name} run with {parameter}={value}: {flow_runs(api, name)}")


def events(api: str, name: str) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": [name]}}, "limit": 50}
    response = httpx.post(f"{api}/events/filter", json=body)
    response.raise_for_status()
    return response.json()["events"]


def event(api: str, name: str, event_id: str, timeout: float = 60) -> dict[str, Any]:
    """An emitted event, once the server has it (clients send events in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in events(api, name):
            if found["id"] == event_id:
                return found
        time.sleep(0.5)
    raise AssertionError(f"the server never received {name} {event_id}")


def artifact(api: str, key: str, flow_run_id: str) -> str:
    body = {"artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [flow_run_id]}}}
    response = httpx.post(f"{api}/artifacts/filter", json=body)
    response.raise_for_status()
    found = response.json()
    assert found, f"no artifact {key} in flow run {flow_run_id}"
    return found[0]["data"]


def serve_week(
    platform: Platform,
    week: TimeWindow,
    version: str,
    ghi_factor: float = 1.0,
    power_factor: float = 1.0,
) -> None:
    """Write a week into the store as the service and /actuals would: the weather sent
    (the irradiance scaled by ``ghi_factor``), the champion's forecast of it, and later
    the plant's measured power (scaled by ``power_factor``)."""
    dataset = load_dataset()
    frame = dataset[week.mask(pd.DatetimeIndex(dataset.index))]
    weather = frame[["ghi", "temp_air"]].assign(ghi=frame["ghi"] * ghi_factor)
    model = Registry(tracking_uri=platform.mlflow).load(version).model
    predicted = model.predict(FeatureBuilder(model.site).build(weather))
    served = datetime.now(UTC)
    rows = [
        {
            "request_id": uuid.uuid4().hex,
            "time": t.to_pydatetime(),
            "ghi": float(w.ghi),
            "temp_air": float(w.temp_air),
            "predicted_w": float(p),
            "model_name": "solar-power",
            "model_version": version,
            "colour": "blue",
            "served_at": served,
        }
        for (t, w), p in zip(weather.iterrows(), np.asarray(predicted), strict=True)
    ]
    prediction_store.write_predictions(platform.engine, rows)
    measured = frame["ac_power"].dropna() * power_factor
    prediction_store.upsert_actuals(
        platform.engine, [(t.to_pydatetime(), float(w)) for t, w in measured.items()]
    )


def pushed(gateway: str, metric: str, **labels: str) -> float | None:
    """The value of the series of ``metric`` with ``labels`` on the Pushgateway (None:
    there is none)."""
    text = httpx.get(f"{gateway}/metrics").text
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric and labels.items() <= sample.labels.items()
    ]
    assert len(values) <= 1, f"{len(values)} series of {metric} with {labels}"
    return values[0] if values else None


def test_an_empty_store_is_nothing_to_judge_and_an_empty_week_is_named(
    platform: Platform,
) -> None:
    # No table yet (the service makes it with its first write): nothing to judge.
    assert monitor_drift() == {"drift": False, "reason": "no predictions yet", "event": None}
    state = monitor_drift(end=datetime(2013, 1, 8, tzinfo=UTC), return_state=True)
    assert state.is_failed()
    assert "the prediction store has no predictions in [2013-01-01 00:00:00+00:00" in state.message
    assert events(platform.api, DRIFT_EVENT) == []


@pytest.fixture(scope="module")
def first(platform: Platform) -> dict[str, Any]:
    """The train flow, run here: the first model, promoted to champion."""
    return train(tune=False, backtest=False)


def test_train_registers_gates_and_announces_the_first_champion(
    platform: Platform, first: dict[str, Any]
) -> None:
    assert first["promote"] and first["reason"] == "no champion yet: first model"
    assert Registry(tracking_uri=platform.mlflow).alias(CHAMPION) == first["version"]
    promoted = event(platform.api, PROMOTED_EVENT, first["event"])
    assert promoted["payload"]["version"] == first["version"]
    assert promoted["resource"]["prefect.resource.id"] == "solar-mlops.model.solar-power"


def test_a_sensor_fault_retrains_nothing_and_a_plant_loss_retrains_and_deploys(
    platform: Platform, first: dict[str, Any]
) -> None:
    champion = first["version"]
    serve_week(platform, NORMAL, champion)
    quiet = monitor_drift()  # the window ends at the newest prediction: 2013-06-10
    assert not quiet["drift"], quiet["reason"]
    assert quiet["event"] is None
    assert pushed(platform.gateway, "solar_drift_data_drift", model_version=champion) == 0

    # The sensor reads low: a data fault, announced as one, and nothing to retrain on.
    serve_week(platform, FAULTY, champion, ghi_factor=0.8)
    sensor = monitor_drift()
    assert sensor["drift"] and sensor["data_fault"], sensor["reason"]
    assert sensor["cause"] == "irradiance-sensor"
    assert "no retraining starts" in sensor["reason"]
    assert pushed(platform.gateway, "solar_drift_data_fault", model_version=champion) == 1
    fault = event(platform.api, DATA_FAULT_EVENT, sensor["event"])
    assert fault["payload"]["cause"] == "irradiance-sensor", fault["payload"]
    assert fault["payload"]["data_fault"] is True
    # The fault lasts: the next run sees it again and, cooling down, raises nothing.
    again = monitor_drift()
    assert again["drift"] and again["event"] is None
    assert f"already announced (event {sensor['event']}" in again["reason"]

    # The sensor repaired, a quarter of the array out: drift, caused by the plant.
    serve_week(platform, OUTAGE, champion, power_factor=0.75)
    loud = monitor_drift()
    assert loud["drift"] and not loud["data_fault"], loud["reason"]
    assert loud["cause"] == "plant-loss-step"
    assert pushed(platform.gateway, "solar_drift_data_fault", model_version=champion) == 0

    # The drift event starts retrain through the server's automation (prefect.yaml).
    drifted = event(platform.api, DRIFT_EVENT, loud["event"])
    assert drifted["payload"]["cause"] == "plant-loss-step", drifted["payload"]
    retrain = finished_run(
        platform.api, "retrain/retrain", "window_start", drifted["payload"]["window_start"]
    )
    assert retrain["state_type"] == "COMPLETED", retrain["state"]
    assert retrain["parameters"]["window_end"] == drifted["payload"]["window_end"]
    # Events arrive in order: neither the quiet week nor the sensor's raised a drift
    # event, and the only retraining is the plant's.
    assert [e["id"] for e in events(platform.api, DRIFT_EVENT)] == [loud["event"]]
    assert [e["id"] for e in events(platform.api, DATA_FAULT_EVENT)] == [sensor["event"]]
    assert len(flow_runs(platform.api, "retrain/retrain")) == 1

    # The challenger, trained to 2013-10-07 without the sensor's week, beats the
    # champion on 2013-10-08..12-31.
    registry = Registry(tracking_uri=platform.mlflow)
    challenger = registry.alias(CHAMPION)
    assert challenger is not None and challenger != champion
    tags = registry.client.get_model_version(registry.name, challenger).tags
    assert tags["data.train_window"] == "2011-01-01..2013-10-07"
    assert tags["data.excluded_windows"] == str(FAULTY)
    assert tags["gate.decision"] == "promoted"
    evidence = artifact(platform.api, "solar-gate", retrain["id"])
    assert f"v{challenger} promoted" in evidence and "2013-10-08..2013-12-31" in evidence
    assert f"leaving out the windows with faulty inputs ({FAULTY})" in evidence

    # Its promotion starts deploy, which runs the playbook and fails with its reason.
    deployed = finished_run(platform.api, "deploy/deploy", "version", challenger)
    assert deployed["state_type"] == "FAILED"
    assert "Read how to reach the switch" in deployed["state"]["message"]
    assert f"deploy v{challenger} failed" in artifact(
        platform.api, "solar-playbook", deployed["id"]
    )
    # The worker's state hook tells Prometheus, shortly after the run's final state.
    for _ in range(20):
        if pushed(platform.gateway, "solar_deploy_failed", action="deploy", version=challenger):
            break
        time.sleep(0.5)
    assert pushed(platform.gateway, "solar_deploy_failed", action="deploy", version=challenger) == 1


def test_a_challenger_that_loses_the_gate_is_recorded_and_announces_nothing(
    platform: Platform, first: dict[str, Any]
) -> None:
    registry = Registry(tracking_uri=platform.mlflow)
    before = registry.alias(CHAMPION)
    # A margin no retraining can meet: the challenger must halve the champion's error.
    state = retrain(
        window_start=datetime(2013, 10, 1, 7, tzinfo=UTC),
        window_end=datetime(2013, 10, 8, 6, 30, tzinfo=UTC),
        margin=0.5,
        tune=False,
        backtest=False,
        return_state=True,
    )
    result = state.result()
    assert not result["promote"] and result["event"] is None
    assert "is not better than champion" in result["reason"]
    assert registry.alias(CHAMPION) == before
    evidence = artifact(platform.api, "solar-gate", str(state.state_details.flow_run_id))
    assert f"v{result['version']} refused" in evidence and "nothing is deployed" in evidence
    announced = [e["payload"]["version"] for e in events(platform.api, PROMOTED_EVENT)]
    assert result["version"] not in announced


def test_rollback_runs_the_playbook_and_fails_with_its_reason(platform: Platform) -> None:
    state = rollback(reason="checking the flow", return_state=True)
    assert state.is_failed()
    # The worker's inventory (ANSIBLE_INVENTORY): this machine, which has no HAProxy.
    assert "playbooks/rollback.yml failed" in state.message
    assert "Read how to reach the switch" in state.message and "on localhost" in state.message
    summary = artifact(platform.api, "solar-playbook", str(state.state_details.flow_run_id))
    assert "rollback failed" in summary
    assert pushed(platform.gateway, "solar_deploy_failed", action="rollback") == 1


def test_deploying_a_version_that_does_not_exist_fails_before_any_playbook(
    platform: Platform, first: dict[str, Any]
) -> None:
    state = deploy(version=99, return_state=True)  # as `-p version=99` sends it
    assert state.is_failed()
    assert "model 'solar-power' has no version 99" in state.message
    assert pushed(platform.gateway, "solar_deploy_failed", action="deploy", version="99") == 1


def test_an_unreachable_mlflow_fails_the_run_with_its_address(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    state = deploy(version="1", return_state=True)
    assert state.is_failed()
    assert f"MLflow at {dead} is unreachable" in state.message
    assert "nothing was read or changed" in state.message

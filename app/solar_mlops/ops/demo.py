"""The whole loop on a running platform, driven from outside as a user would: the first
champion trained and deployed by the flows; replayed traffic whose irradiance sensor
reads low, which the monitor names a data fault (no retraining); then a week with a
quarter of the array out, the monitor's drift event, the retraining it triggers (which
leaves the faulty week out), the gate's verdict and the winner's rollout under load.
``make demo`` runs it on the lab after ``site.yml``; the platform scenario runs it at
full speed as the end-to-end test.

Everything goes through the platform's public interfaces: Prefect's API (deployments
and the runs its automations start), MLflow's registry and HAProxy's frontend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun

from solar_mlops import monitoring
from solar_mlops.data import TimeWindow
from solar_mlops.errors import SolarMLOpsError
from solar_mlops.ops import replay
from solar_mlops.registry import CHAMPION, Registry
from solar_mlops.site import Site

Say = Callable[[str], None]


class DemoError(SolarMLOpsError):
    """A step of the demo did not turn out as the loop promises; the message says which."""


@dataclass(frozen=True)
class Endpoints:
    """Where the platform answers (the lab's published ports by default)."""

    api: str = "http://127.0.0.1:8080"
    mlflow: str = "http://127.0.0.1:5000"
    prefect: str = "http://127.0.0.1:4200/api"
    prometheus: str = "http://127.0.0.1:9090"

    @property
    def prefect_ui(self) -> str:
        return self.prefect.removesuffix("/api")


@dataclass(frozen=True)
class Scenario:
    """The story: a fortnight of traffic whose second week has a faulty sensor; once it
    is repaired, a week in which a quarter of the array is out; then load from the weeks
    after it while the loop reacts.

    ``quick`` trains without grid search and backtest (about a minute instead of many),
    for the first model and, for the demo's duration, for the retraining deployment.
    """

    quick: bool = True
    traffic: TimeWindow = TimeWindow("2013-09-24", "2013-10-07")
    sensor_fault: str = "irradiance-low:0.8@2013-10-01"
    plant_traffic: TimeWindow = TimeWindow("2013-10-08", "2013-10-14")
    plant_fault: str = "string-outage:0.75@2013-10-08"
    load: TimeWindow = TimeWindow("2013-10-15", "2013-12-31")
    speed: float = 0.0  # the replayed weeks as fast as the service answers
    load_rate: float = 4.0  # /predict requests a second during the retraining and rollout
    run_timeout_s: float = 1800.0

    @property
    def training(self) -> dict[str, bool]:
        """The train and retrain flows' parameters for this choice."""
        return {"tune": not self.quick, "backtest": not self.quick}


@dataclass
class Report:
    """What the demo saw, for its summary."""

    started: float = field(default_factory=time.monotonic)
    served_before: dict[str, Any] = field(default_factory=dict)
    served_after: dict[str, Any] = field(default_factory=dict)
    first_gate: str = ""
    data_fault: str = ""
    drift: str = ""
    gate: str = ""
    rollouts: list[str] = field(default_factory=list)
    retired: str = ""
    traffic: replay.Summary | None = None
    plant_traffic: replay.Summary | None = None
    load: replay.Summary | None = None

    def lines(self) -> list[str]:
        def colour(served: dict[str, Any]) -> str:
            return f"v{served.get('model_version', '?')} on {served.get('colour') or '?'}"

        out = [
            f"served before: {colour(self.served_before)}; after: {colour(self.served_after)}",
        ]
        if self.first_gate:
            out.append(f"first model: {self.first_gate}")
        out += [f"data fault: {self.data_fault}", f"drift: {self.drift}", f"gate: {self.gate}"]
        out += [f"rollout: {line}" for line in self.rollouts] or ["rollout: none"]
        if self.retired:
            out.append(f"retired: {self.retired}")
        for name, summary in (
            ("replayed traffic", self.traffic),
            ("the plant's week", self.plant_traffic),
            ("load during the loop", self.load),
        ):
            if summary is not None:
                out.append(f"{name}: " + "; ".join(summary.lines()))
        out.append(f"failed requests in all: {self.failed_requests}")
        out.append(f"took {self.took_s:.0f} s")
        return out

    def as_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self).items() if k != "started"}
        return {**fields, "failed_requests": self.failed_requests, "took_s": self.took_s}

    @property
    def took_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def failed_requests(self) -> int:
        summaries = (self.traffic, self.plant_traffic, self.load)
        return sum(sum(s.failures.values()) for s in summaries if s is not None)


class Orchestrator:
    """The Prefect server, through its own client: deployments, runs and their states."""

    def __init__(self, endpoints: Endpoints, say: Say) -> None:
        self.client = SyncPrefectClient(endpoints.prefect)
        # Runs an automation made before this moment belong to an earlier demo.
        self.since = datetime.now(UTC)
        self.ui = endpoints.prefect_ui
        self.say = say

    def __enter__(self) -> Orchestrator:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def start(self, deployment: str, parameters: dict[str, Any]) -> FlowRun:
        found = self.client.read_deployment_by_name(deployment)
        run = self.client.create_flow_run_from_deployment(found.id, parameters=parameters)
        self.say(f"started {deployment} ({self.link(run)})")
        return run

    def runs_since(self, deployment: str) -> list[FlowRun]:
        """The runs of ``deployment`` created since this demo started."""
        found = self.client.read_deployment_by_name(deployment)
        runs = self.client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        )
        return [run for run in runs if run.created and run.created >= self.since]

    def started_by_automation(
        self, deployment: str, matches: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> FlowRun:
        """The run of ``deployment`` whose parameters ``matches``, once an automation made it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for run in self.runs_since(deployment):
                if matches(run.parameters):
                    self.say(f"the automation started {deployment} ({self.link(run)})")
                    return run
            time.sleep(2)
        raise DemoError(
            f"no {deployment} run was started within {timeout_s:.0f} s: is its trigger "
            f"enabled (Prefect UI, Automations) and the event in the event feed?"
        )

    def wait(self, run: FlowRun, timeout_s: float) -> FlowRun:
        """Wait until ``run`` is final, telling each new state; fail unless it completed."""
        deadline, seen = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            run = self.client.read_flow_run(run.id)
            state = (run.state.name if run.state else None) or "?"
            if state != seen:
                self.say(f"  {run.name}: {state}")
                seen = state
            if run.state is not None and run.state.is_final():
                if not run.state.is_completed():
                    raise DemoError(
                        f"{run.name} ended {state}: {run.state.message} (logs: {self.link(run)})"
                    )
                return run
            time.sleep(2)
        raise DemoError(f"{run.name} did not finish within {timeout_s:.0f} s ({self.link(run)})")

    @contextmanager
    def parameters(self, deployment: str, overrides: dict[str, Any]) -> Iterator[None]:
        """The deployment's default parameters changed for the duration, then restored."""
        found = self.client.read_deployment_by_name(deployment)
        before = dict(found.parameters)
        self.client.update_deployment(
            found.id, DeploymentUpdate(parameters={**before, **overrides})
        )
        try:
            yield
        finally:
            self.client.update_deployment(found.id, DeploymentUpdate(parameters=before))

    def link(self, run: FlowRun) -> str:
        return f"{self.ui}/runs/flow-run/{run.id}"


class _LoadStoppedError(Exception):
    """Raised inside the load's replay when the demo no longer needs it."""


class _StoppableClock(replay.PacedClock):
    def __init__(self, speed: float, stop: threading.Event) -> None:
        super().__init__(speed)
        self._stop = stop

    def wait_until(self, moment: pd.Timestamp) -> None:
        super().wait_until(moment)
        if self._stop.is_set():
            raise _LoadStoppedError


class Load(threading.Thread):
    """Steady /predict traffic through HAProxy while the loop works, with no retries:
    every failed request counts. The window is replayed again from its start until the
    demo says stop, however long the retraining takes."""

    def __init__(self, url: str, window: TimeWindow, faults: list[replay.Fault], rate: float):
        super().__init__(name="demo-load", daemon=True)
        self.sent = replay.load_traffic(window, faults)
        self.stop = threading.Event()
        self.speed = rate * replay.DEFAULT_BATCH * replay.STEP.total_seconds()
        self.client = replay.ServiceClient(url, retries=0)
        self.replayer = replay.Replayer(self.client, self._clock(), replay.DEFAULT_BATCH)
        self.error: Exception | None = None

    def _clock(self) -> _StoppableClock:
        return _StoppableClock(self.speed, self.stop)

    def run(self) -> None:
        try:
            while True:
                self.replayer.run(self.sent)
                self.replayer.clock = self._clock()  # a new pass starts a new schedule
        except _LoadStoppedError:
            pass
        except Exception as exc:  # reported by finish(); the thread must not die silently
            self.error = exc
        finally:
            self.client.close()

    def finish(self) -> replay.Summary:
        self.stop.set()
        self.join(timeout=30)
        if self.error is not None:
            raise DemoError(f"the load stopped before the rollout ended: {self.error}")
        return self.replayer.summary


def serving(url: str) -> dict[str, Any]:
    """What HAProxy's active colour answers with, or {} when nothing serves yet."""
    try:
        response = httpx.get(f"{url}/version", timeout=5)
    except httpx.TransportError as exc:
        raise DemoError(f"HAProxy does not answer at {url}: {exc}") from None
    return response.json() if response.status_code == 200 else {}


def gate_evidence(registry: Registry, version: str) -> str:
    tags = registry.client.get_model_version(registry.name, version).tags
    return f"v{version} {tags.get('gate.decision', 'not gated')}: {tags.get('gate.reason', '')}"


def run(endpoints: Endpoints, scenario: Scenario, api_key: str, say: Say) -> Report:
    """The loop once, end to end; raises ``DemoError`` naming the step that went wrong."""
    report = Report()
    registry = Registry(tracking_uri=endpoints.mlflow)
    sensor = replay.parse_fault(scenario.sensor_fault)
    plant = replay.parse_fault(scenario.plant_fault)
    with Orchestrator(endpoints, say) as prefect, ExitStack() as stack:
        say("1/6 the first champion")
        report.first_gate = first_champion(prefect, registry, endpoints, scenario, say)
        report.served_before = serving(endpoints.api)

        say(f"2/6 traffic {scenario.traffic} through HAProxy; {sensor.describe()}")
        report.traffic = send(endpoints, api_key, scenario.traffic, [sensor], scenario.speed, say)
        say("3/6 monitor_drift judges that week: the inputs are at fault, nothing retrains")
        faulty = judge_week(prefect, registry, scenario.traffic, True, scenario.run_timeout_s)
        report.data_fault = report_line(faulty)
        say(f"  data fault announced: {report.data_fault}")

        say(f"4/6 the sensor repaired, traffic {scenario.plant_traffic}; {plant.describe()}")
        report.plant_traffic = send(
            endpoints, api_key, scenario.plant_traffic, [plant], scenario.speed, say
        )
        # The retraining the drift event starts takes the deployment's defaults.
        retraining = (
            prefect.parameters("retrain/retrain", scenario.training)
            if scenario.quick
            else nullcontext()
        )
        with retraining:
            say("5/6 monitor_drift judges that week; the drift event retrains, under load "
                f"({scenario.load_rate:g} requests a second)")  # fmt: skip
            drifted = judge_week(
                prefect, registry, scenario.plant_traffic, False, scenario.run_timeout_s
            )
            report.drift = report_line(drifted)
            say(f"  drift announced: {report.drift}")
            load = Load(endpoints.api, scenario.load, [plant], scenario.load_rate)
            stack.callback(load.stop.set)  # whatever happens next, the load ends with the demo
            load.start()
            champion = registry.alias(CHAMPION)
            retrain = prefect.started_by_automation(
                "retrain/retrain",
                lambda p: pd.Timestamp(p.get("window_start")) == drifted.window_start,
                timeout_s=120,
            )
            # Only the plant's drift retrains: by now the sensor's event has long had
            # its chance to start one.
            others = [r.name for r in prefect.runs_since("retrain/retrain") if r.id != retrain.id]
            if others:
                raise DemoError(
                    f"retrain ran on more than the plant's drift ({', '.join(others)}): a "
                    "data fault must start no retraining"
                )
            prefect.wait(retrain, scenario.run_timeout_s)
            challenger = max(registry.versions(), key=lambda v: int(v.version)).version
            report.gate = gate_evidence(registry, challenger)
            say(f"  gate: {report.gate}")

        say("6/6 the winner's rollout")
        deploy = None
        if registry.alias(CHAMPION) == champion:
            say(f"  the gate kept v{champion}: nothing to deploy")
        else:
            deploy = prefect.started_by_automation(
                "deploy/deploy", lambda p: str(p.get("version")) == challenger, timeout_s=120
            )
            prefect.wait(deploy, scenario.run_timeout_s)
        time.sleep(3)  # a few seconds of load on the new colour
        report.load = load.finish()
        report.served_after = serving(endpoints.api)
        if deploy is not None:
            report.rollouts.append(
                f"v{challenger} to {report.served_after.get('colour')} under load, "
                f"by the deploy flow ({prefect.link(deploy)})"
            )
            if champion is not None:  # the version the rollout replaced
                report.retired = retired_alerts_resolve(endpoints.prometheus, champion, say)
    return report


# What the alert rules skip once a switch marked another version as serving.
RETIRED = "solar:model_version_retired"
_VERSION_ALERTS = 'ALERTS{{model_version="{}", category=~"drift|calibration"}}'
_VERDICT = '{{__name__=~"solar_drift_(data|performance)_drift", model_version="{}"}}'


def prometheus_query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result (a vector) through Prometheus' HTTP API."""
    try:
        response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DemoError(f"Prometheus at {url} did not answer {expr!r}: {exc}") from None
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def retired_alerts_resolve(url: str, version: str, say: Say, timeout_s: float = 180.0) -> str:
    """Wait until Prometheus counts ``version`` retired (the rollout's switch marked the
    new one on the Pushgateway) and none of its drift or calibration alerts is pending
    or firing, although the monitor's last verdict on it, the drift, is still there."""
    verdict = [float(s["value"][1]) for s in prometheus_query(url, _VERDICT.format(version))]
    deadline = time.monotonic() + timeout_s
    while True:
        retired = prometheus_query(url, f'{RETIRED}{{model_version="{version}"}}')
        alerts = prometheus_query(url, _VERSION_ALERTS.format(version))
        if retired and not alerts:
            break
        if time.monotonic() > deadline:
            names = ", ".join(sorted({a["metric"]["alertname"] for a in alerts}))
            why = (
                f"still has its alerts {names}"
                if retired
                else f"does not count it retired ({RETIRED}): did the rollout mark the new "
                "version on the Pushgateway (bluegreen_pushgateway_url)?"
            )
            raise DemoError(
                f"v{version} stopped serving, yet after {timeout_s:.0f} s Prometheus {why}"
            )
        time.sleep(3)
    drifted = "its drift verdict still pushed" if 1.0 in verdict else "no drift verdict on it"
    line = f"v{version} ({drifted}): no drift or calibration alert pending or firing"
    say(f"  retired {line}")
    return line


def send(
    endpoints: Endpoints,
    api_key: str,
    window: TimeWindow,
    faults: list[replay.Fault],
    speed: float,
    say: Say,
) -> replay.Summary:
    """Replay ``window`` with ``faults`` through HAProxy: predictions, then actuals."""
    client = replay.ServiceClient(endpoints.api, api_key)
    replayer = replay.Replayer(client, replay.PacedClock(speed), progress=say)
    try:
        return replayer.run(replay.load_traffic(window, faults))
    finally:
        client.close()


def report_line(event: monitoring.Announcement) -> str:
    """An announcement as the report tells it."""
    return (
        f"event {event.event_id} on {event.window_start} .. {event.window_end} "
        f"(champion v{event.model_version})"
    )


def judge_week(
    prefect: Orchestrator,
    registry: Registry,
    traffic: TimeWindow,
    data_fault: bool,
    timeout_s: float,
) -> monitoring.Announcement:
    """Run monitor_drift on the last week of ``traffic`` and return the event it raised:
    a data fault or a drift, as the story expects."""
    before = monitoring.last_announcement(registry, data_fault)
    other = monitoring.last_announcement(registry, not data_fault)
    # The week to the traffic's end: the newest prediction in the store may be a
    # deployment's smoke test, not traffic. Cooldown 0: a demo run again on the same lab
    # announces again.
    end = pd.Timestamp(traffic.end, tz=Site().timezone) + pd.Timedelta(days=1)
    monitor = prefect.start(
        "monitor_drift/monitor_drift", {"end": end.isoformat(), "cooldown_days": 0}
    )
    prefect.wait(monitor, timeout_s)
    announced = monitoring.last_announcement(registry, data_fault)
    kind = "data-fault" if data_fault else "drift"
    if announced is None or announced == before:
        raise DemoError(
            f"monitor_drift raised no {kind} event on the week to {traffic.end} "
            f"(its verdict and likely cause: {prefect.link(monitor)})"
        )
    if monitoring.last_announcement(registry, not data_fault) != other:
        raise DemoError(
            f"monitor_drift raised a {kind} event and the other kind too on the week to "
            f"{traffic.end} ({prefect.link(monitor)})"
        )
    return announced


def first_champion(
    prefect: Orchestrator,
    registry: Registry,
    endpoints: Endpoints,
    scenario: Scenario,
    say: Say,
) -> str:
    """Train and deploy the first model unless a champion serves already; the gate's word."""
    champion = registry.alias(CHAMPION)
    evidence = ""
    if champion is None:
        trained = prefect.start("train/train", scenario.training)
        prefect.wait(trained, scenario.run_timeout_s)
        champion = registry.alias(CHAMPION)
        if champion is None:
            raise DemoError(f"the train run promoted no champion ({prefect.link(trained)})")
        evidence = gate_evidence(registry, champion)
        say(f"  {evidence}")
        deploy = prefect.started_by_automation(
            "deploy/deploy", lambda p: str(p.get("version")) == champion, timeout_s=120
        )
        prefect.wait(deploy, scenario.run_timeout_s)
    served = serving(endpoints.api)
    if served.get("model_version") != champion:
        say(f"  champion v{champion} does not serve yet: deploying it")
        deploy = prefect.start("deploy/deploy", {"version": champion, "reason": "demo"})
        prefect.wait(deploy, scenario.run_timeout_s)
        served = serving(endpoints.api)
    say(f"  HAProxy serves v{served.get('model_version')} on {served.get('colour')}")
    return evidence or f"champion v{champion} was there already"


# Where each credential comes from: an environment variable, else the lab's demo value.
_SECRET = "${}, else inventory/shared/demo-secrets.yml"
# The lab's other services (inventory/lab/host_vars/lab1.yml publishes them on loopback).
_LAB_URLS = [
    (
        "http://127.0.0.1:8404/stats",
        "HAProxy stats",
        "admin / " + _SECRET.format("SOLAR_LAB_STATS_PASSWORD"),
    ),
    ("http://127.0.0.1:9090", "Prometheus: alerts, targets", "none (loopback only)"),
    ("http://127.0.0.1:9091", "Pushgateway: drift and deploy outcomes", "none (loopback only)"),
    ("http://127.0.0.1:9093", "Alertmanager", "none (loopback only)"),
]


def urls(endpoints: Endpoints) -> list[tuple[str, str, str]]:
    """Every URL worth opening after the demo, with where its credentials come from."""
    return [
        (
            endpoints.api,
            "prediction API via HAProxy (/docs)",
            "/actuals: X-API-Key = " + _SECRET.format("SOLAR_API_KEY"),
        ),
        (endpoints.mlflow, "MLflow: runs, registry, drift reports", "none (loopback only)"),
        (
            endpoints.prefect_ui,
            "Prefect: flow runs, artifacts, automations",
            "none (loopback only)",
        ),
        *_LAB_URLS,
    ]

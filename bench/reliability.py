"""Faults under load on a running platform: what each did to the clients, and whether
the platform came through as it claims.

A client on 127.0.0.1 sends 1-row ``/predict`` requests at a steady rate through
HAProxy (no retries: every failed request counts) while each fault is applied in turn
on the inventory's hosts through ansible-runner:

1. ``fuzz``: schemathesis against the deployed API through HAProxy, with the API key
   (so ``/actuals`` is tried past its key check): no 5xx;
2. ``kill``: ``docker kill`` of the active colour's container: systemd restarts it and
   it serves again; HAProxy's backup colour answers meanwhile;
3. ``haproxy``: HAProxy reloaded (no request may fail), then restarted;
4. ``postgres``: Postgres stopped for ``--outage`` seconds: forecasts keep coming,
   their log rows are buffered (or counted as dropped), MLflow and Prefect come back;
5. ``mlflow``: MLflow stopped during a deployment of a version no colour holds: the
   deployment fails and traffic stays; with MLflow back the same deployment succeeds;
6. ``broken``: a deployment of a broken model (the serving weights registered with the
   site's capacity in kW instead of W): refused by the smoke test, traffic stays;
   then a rollback to the version the run started with;
7. ``reboot``: every lab host restarted (``docker restart``; container labs only): every
   unit comes back by itself, serving the same colour and version.

    make reliability      # the lab; or:
    uv run python bench/reliability.py --inventory inventory/lab \\
        --api-key-file .cache/demo/api-key [--only kill postgres]

It registers two versions in the platform's MLflow (a copy of the serving version and
the broken one) and logs the fuzzer's forecasts and actuals: run it on a lab or a
staging platform, not on production. Exit 1 when a fault's outcome was not the one
claimed, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
from harness import ROOT, Load, Sample, ansible_from_this_env, run_command, run_playbook

ACTOR = "bench/reliability.py"
SCHEMATHESIS_CONFIG = ROOT / "bench" / "schemathesis.toml"


@dataclass
class Outcome:
    """One fault: what was tried, what happened, what the clients saw meanwhile."""

    name: str
    tried: str
    samples: list[Sample]  # the load's, shared: every answer the clients got
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    happened: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def saw(self, fact: str) -> None:
        self.happened.append(fact)
        print(f"    {fact}", flush=True)

    def expect(self, holds: bool, claim: str, otherwise: str) -> None:
        """Record whether a claim held; ``otherwise`` says what was found instead."""
        if holds:
            self.saw(f"ok: {claim}")
        else:
            self.problems.append(f"{claim}: {otherwise}")
            print(f"    FAIL: {claim}: {otherwise}", flush=True)


class Platform:
    """The running platform, as a client and an operator reach it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.inventory: Path = args.inventory.resolve()
        self.url: str = args.url
        self.mlflow_url: str = args.mlflow_url
        self.prometheus_url: str = args.prometheus_url
        self.prefect_url: str = args.prefect_url
        self.api_key = args.api_key_file.read_text().strip()
        self.model = args.model
        # Each deployment's runner artifacts (stdout, events), the newest runs kept.
        self.artifacts = ROOT / ".cache" / "reliability" / "ansible-runs"
        self.start: tuple[str, str] = ("", "")  # (colour, version) when the run began

    def serving(self) -> tuple[str, str]:
        """(colour, version) answering through HAProxy."""
        with urllib.request.urlopen(f"{self.url}/version", timeout=5) as answer:
            body = json.load(answer)
        return body["colour"], str(body["model_version"])

    def command(self, hosts: str, command: str) -> tuple[bool, str]:
        return run_command(self.inventory, hosts, command)

    def playbook(self, playbook: str, reason: str, **extravars: str) -> tuple[bool, str]:
        """(succeeded, the playbook's reason when it failed)."""
        extravars |= {"bluegreen_actor": ACTOR, "bluegreen_reason": reason}
        return run_playbook(self.inventory, playbook, extravars, self.artifacts)

    def deploy(self, version: str, reason: str, **extravars: str) -> tuple[bool, str]:
        return self.playbook("deploy_model.yml", reason, model_version=version, **extravars)

    def metric(self, query: str) -> float:
        """A Prometheus query's value summed over its series (0 when none)."""
        url = f"{self.prometheus_url}/api/v1/query?query={urllib.parse.quote(query)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            result = json.load(answer)["data"]["result"]
        return sum(float(series["value"][1]) for series in result)

    def answers(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False


def wait_for(check: Callable[[], bool], timeout: float, every: float = 1.0) -> float | None:
    """Seconds until ``check`` held, or None when it never did within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return round(time.monotonic() - started, 1)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(every)
    return None


# -- the faults ----------------------------------------------------------------------------


def fuzz(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{platform.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(args.fuzz_examples),
        "--seed",
        "7",
    ]
    # The key reaches schemathesis through its config file's ${SOLAR_API_KEY}, never
    # through a command line that `ps` shows.
    env = {**os.environ, "SOLAR_API_KEY": platform.api_key}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    summary = [line for line in result.stdout.splitlines() if "passed" in line or "failed" in line]
    outcome.saw(f"schemathesis: {summary[-1].strip(' =') if summary else 'no summary'}")
    outcome.expect(
        result.returncode == 0,
        "no request answered with a server error",
        f"schemathesis exited {result.returncode}:\n{result.stdout[-3000:]}",
    )


def kill(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    colour, version = platform.serving()
    ok, detail = platform.command("model_servers", f"docker kill solar-model-{colour}")
    outcome.expect(ok, f"killed solar-model-{colour} (version {version})", detail)
    back = wait_for(lambda: platform.serving() == (colour, version), args.recovery_timeout)
    outcome.expect(
        back is not None,
        f"{colour} serves version {version} again",
        f"not within {args.recovery_timeout} s",
    )
    if back is not None:
        outcome.saw(f"{colour} answered again {back} s after the kill (systemd restarted it)")


def haproxy(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    ok, detail = platform.command("lb", "systemctl reload haproxy")
    outcome.expect(ok, "reloaded HAProxy (systemctl reload: new workers, old ones drain)", detail)
    time.sleep(args.settle)
    reload_failed = count_failures(outcome.samples, outcome.started, time.time())
    outcome.expect(
        reload_failed == 0, "no request failed during the reload", f"{reload_failed} failed"
    )
    restarted = time.time()
    ok, detail = platform.command("lb", "systemctl restart haproxy")
    outcome.expect(ok, "restarted HAProxy (systemctl restart: a new container)", detail)
    back = wait_for(lambda: platform.answers(f"{platform.url}/health/ready"), args.recovery_timeout)
    outcome.expect(back is not None, "HAProxy answers again", "it did not")
    time.sleep(args.settle)
    lost = count_failures(outcome.samples, restarted, time.time())
    outcome.saw(f"requests failed during the restart: {lost} (a restart drops the listener)")


def postgres(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    colour, _ = platform.serving()
    before = log_counters(platform)
    pid = main_pid(platform, f"solar-model-{colour}")
    ok, detail = platform.command("control", "systemctl stop solar-postgres")
    outcome.expect(ok, "stopped Postgres", detail)
    stopped = time.time()
    time.sleep(args.outage)
    during = [s for s in outcome.samples if stopped <= s.sent < time.time()]
    ok, detail = platform.command("control", "systemctl start solar-postgres")
    outcome.expect(ok, f"started Postgres again after {args.outage:.0f} s", detail)
    outcome.expect(
        all(s.status == 200 for s in during),
        f"forecasts kept coming while Postgres was down ({len(during)} answered)",
        f"{sum(s.status != 200 for s in during)} of {len(during)} failed",
    )
    drained = wait_for(lambda: _drained(platform, before), args.recovery_timeout, every=5)
    after = log_counters(platform)
    delta = {key: int(after[key] - before[key]) for key in after}
    outcome.saw(
        f"prediction log: {delta['written']} rows written since the stop, "
        f"{delta['dropped']} dropped, {delta['failures']} failed write attempts, "
        f"{int(after['queued'])} still queued"
    )
    outcome.expect(
        drained is not None,
        "the buffered rows reached Postgres once it was back",
        f"queue {after['queued']:.0f} rows, {delta['written']} written",
    )
    outcome.expect(
        main_pid(platform, f"solar-model-{colour}") == pid,
        f"solar-model-{colour} did not crash or restart",
        "its main process changed",
    )
    for name, url in (
        ("MLflow", f"{platform.mlflow_url}/health"),
        ("Prefect", f"{platform.prefect_url}/health"),
    ):
        back = wait_for(lambda url=url: platform.answers(url), args.recovery_timeout)
        outcome.expect(back is not None, f"{name} answers again", "it did not")


def mlflow(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    _, serving = platform.serving()
    copy = register_copy(platform, serving)
    outcome.saw(f"registered version {copy}: version {serving}'s model, held by no colour")
    ok, detail = platform.command("control", "systemctl stop solar-mlflow")
    outcome.expect(ok, "stopped MLflow", detail)
    timeout = str(args.deploy_timeout)
    expect_refused(
        platform, outcome, copy, "reliability: MLflow stopped", bluegreen_ready_timeout=timeout
    )
    ok, detail = platform.command("control", "systemctl start solar-mlflow")
    outcome.expect(ok, "started MLflow again", detail)
    back = wait_for(lambda: platform.answers(f"{platform.mlflow_url}/health"), 120)
    outcome.expect(back is not None, "MLflow answers again", "it did not")
    deployed, detail = platform.deploy(copy, "reliability: MLflow back")
    outcome.expect(deployed, "the same deployment succeeds with MLflow back", detail)
    outcome.expect(
        platform.serving()[1] == copy, f"version {copy} serves", f"{platform.serving()} serves"
    )


def broken(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    _, serving = platform.serving()
    version = register_broken(platform, serving)
    outcome.saw(f"registered version {version}: version {serving}'s weights, capacity in kW")
    expect_refused(platform, outcome, version, "reliability: broken model")
    if platform.serving() != platform.start:
        ok, detail = platform.playbook("rollback.yml", "reliability: back to the start")
        outcome.expect(ok, "rolled back", detail)
    outcome.expect(
        platform.serving() == platform.start,
        "{} serves version {}, as when the run began".format(*platform.start),
        "{} serves version {}".format(*platform.serving()),
    )


def reboot(platform: Platform, outcome: Outcome, args: argparse.Namespace) -> None:
    before = platform.serving()
    hosts = lab_hosts(platform.inventory)
    if not hosts:
        outcome.saw(
            "skipped: the inventory's hosts are not lab containers; reboot them "
            "(vagrant reload, or from EC2) and check with --only fuzz"
        )
        return
    began = time.time()
    result = subprocess.run(
        ["docker", "restart", "--time", "60", *hosts], capture_output=True, text=True
    )
    outcome.expect(
        result.returncode == 0,
        f"restarted {', '.join(hosts)} (docker restart: took {time.time() - began:.0f} s)",
        result.stderr.strip(),
    )
    back = wait_for(lambda: platform.serving() == before, args.reboot_timeout)
    outcome.expect(
        back is not None,
        f"{before[0]} serves version {before[1]} again by itself",
        f"not within {args.reboot_timeout} s",
    )
    failed = [s.sent - began for s in outcome.samples if s.sent > began and s.status != 200]
    if failed:
        outcome.saw(f"forecasts failed from {min(failed):.0f} s to {max(failed):.0f} s after "
                    "the restart began (one host: HAProxy and both colours went down)")  # fmt: skip
    ok, detail = platform.command("all", "systemctl is-system-running --wait")
    outcome.expect(ok, "every host's units are running (systemctl is-system-running)", detail)


# -- helpers -------------------------------------------------------------------------------


def expect_refused(
    platform: Platform, outcome: Outcome, version: str, reason: str, **extravars: str
) -> None:
    """Deploy ``version``, which must fail, leaving traffic where it was."""
    before = platform.serving()
    deployed, detail = platform.deploy(version, reason, **extravars)
    outcome.expect(not deployed, f"the deployment of {version} failed", "it succeeded")
    outcome.saw(f"the deployment said: {first_line(detail)}")
    outcome.expect(
        platform.serving() == before,
        "{} still serves {}".format(*before),
        "{} serves version {}".format(*platform.serving()),
    )


def count_failures(samples: list[Sample], start: float, end: float) -> int:
    return sum(s.status != 200 for s in samples if start <= s.sent < end)


def first_line(text: str) -> str:
    return " ".join(text.split())[:400]


def main_pid(platform: Platform, unit: str) -> str:
    _, detail = platform.command("model_servers", f"systemctl show -p MainPID --value {unit}")
    return detail


def log_counters(platform: Platform) -> dict[str, float]:
    return {
        "written": platform.metric("sum(solar_prediction_log_written_rows_total)"),
        "dropped": platform.metric("sum(solar_prediction_log_dropped_rows_total)"),
        "failures": platform.metric("sum(solar_prediction_log_write_failures_total)"),
        "queued": platform.metric("sum(solar_prediction_log_queue_rows)"),
    }


def _drained(platform: Platform, before: dict[str, float]) -> bool:
    now = log_counters(platform)
    return now["queued"] == 0 and now["written"] > before["written"]


def lab_hosts(inventory: Path) -> list[str]:
    """The inventory's hosts that are lab containers (reached with ``docker exec``)."""
    out, _ = ansible_runner.get_inventory(
        action="list", inventories=[str(inventory)], response_format="json", quiet=True
    )
    hostvars = out.get("_meta", {}).get("hostvars", {})
    return [
        name
        for name, values in hostvars.items()
        if values.get("ansible_connection") == "community.docker.docker"
    ]


def register_copy(platform: Platform, version: str) -> str:
    """A new registry version of ``version``'s model: something no colour holds yet."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)
    source = client.get_model_version(platform.model, version)
    # MLflow 3 registers a logged model (source models:/<model id>) by its id, which the
    # registry's answer leaves out; the source carries it.
    model_id = source.source.removeprefix("models:/")
    copy = client.create_model_version(
        platform.model, source.source, run_id=source.run_id, model_id=model_id
    )
    return str(copy.version)


def register_broken(platform: Platform, version: str) -> str:
    """``version``'s booster registered with the site's capacity in kW: a model that
    loads and answers, with every forecast clipped to a thousandth of the plant."""
    import lightgbm as lgb
    import mlflow
    from mlflow.models import Model

    from solar_mlops.predictor import BOOSTER_FILE, download_version

    with tempfile.TemporaryDirectory() as scratch:
        path = download_version(platform.model, version, platform.mlflow_url, Path(scratch))
        model = Model.load(str(path))
        metadata = dict(model.metadata or {})
        site = dict(metadata["site"])  # type: ignore[arg-type]
        site["capacity_w"] = float(site["capacity_w"]) / 1000
        metadata["site"] = site
        mlflow.set_experiment("solar-reliability")
        # MLflow prints its registration and run links; this script says what it did.
        quiet = io.StringIO()
        with (
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            mlflow.start_run(run_name=f"broken copy of v{version}"),
        ):
            info = mlflow.lightgbm.log_model(
                lgb.Booster(model_file=str(path / BOOSTER_FILE)),
                name="model",
                registered_model_name=platform.model,
                signature=model.signature,
                metadata=metadata,
                pip_requirements=[f"lightgbm=={lgb.__version__}"],
            )
    return str(info.registered_model_version)


def report_clients(outcome: Outcome) -> None:
    seen = [s for s in outcome.samples if outcome.started <= s.sent < outcome.ended]
    failed = [s for s in seen if s.status != 200]
    outcome.requests, outcome.failed = len(seen), len(failed)
    outcome.failures = dict(Counter(s.error for s in failed))
    kinds = ", ".join(f"{n} {kind}" for kind, n in outcome.failures.items())
    print(
        f"    clients: {len(seen)} requests, {len(failed)} failed"
        + (f" ({kinds})" if kinds else ""),
        flush=True,
    )


STEPS: dict[str, tuple[str, Callable[[Platform, Outcome, argparse.Namespace], None]]] = {
    "fuzz": ("schemathesis against the API through HAProxy, with the key", fuzz),
    "kill": ("docker kill the active colour's container", kill),
    "haproxy": ("reload, then restart HAProxy", haproxy),
    "postgres": ("stop Postgres for a while, then start it", postgres),
    "mlflow": ("deploy a version no colour holds while MLflow is stopped, then with it", mlflow),
    "broken": ("deploy a broken model; roll back to where the run began", broken),
    "reboot": ("restart every lab host", reboot),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "lab")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="HAProxy's frontend")
    parser.add_argument("--mlflow-url", default="http://127.0.0.1:5000")
    parser.add_argument("--prefect-url", default="http://127.0.0.1:4200/api")
    parser.add_argument("--prometheus-url", default="http://127.0.0.1:9090")
    parser.add_argument(
        "--api-key-file", type=Path, required=True, help="a file holding the service's API key"
    )
    parser.add_argument("--model", default="solar-power", help="registered model name")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds around each fault")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Postgres is down")
    parser.add_argument("--fuzz-examples", type=int, default=30)
    parser.add_argument(
        "--deploy-timeout",
        type=int,
        default=60,
        help="readiness timeout of the deployment without MLflow",
    )
    parser.add_argument("--recovery-timeout", type=float, default=90.0)
    parser.add_argument("--reboot-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    urls = (args.url, args.mlflow_url, args.prefect_url, args.prometheus_url)
    if not all(url.startswith(("http://127.0.0.1:", "http://localhost:")) for url in urls):
        parser.error("faults and load go to 127.0.0.1 only")
    ansible_from_this_env()
    # The registry work prints only what this script says.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.environ["MLFLOW_LOGGING_LEVEL"] = "ERROR"
    try:
        platform = Platform(args)
        colour, version = platform.start = platform.serving()
    except OSError as exc:
        print(f"cannot start: {exc} (is the platform up? make lab-site, then make demo)")
        return 2
    print(f"serving: {colour}, version {version}; load: {args.rate:.0f} requests/s")

    outcomes: list[Outcome] = []
    with Load(args.url, args.rate, args.threads) as load:
        time.sleep(args.settle)
        for name in args.only:
            tried, step = STEPS[name]
            print(f"\n== {name}: {tried}", flush=True)
            outcome = Outcome(name, tried, load.samples)
            outcomes.append(outcome)
            try:
                step(platform, outcome, args)
            except Exception as exc:  # one fault's crash must not hide the rest
                outcome.problems.append(f"the step stopped: {type(exc).__name__}: {exc}")
                print(f"    FAIL: the step stopped: {type(exc).__name__}: {exc}", flush=True)
            time.sleep(args.settle)
            outcome.ended = time.time()
            report_clients(outcome)
    return summarise(outcomes, args.json)


def summarise(outcomes: list[Outcome], path: Path | None) -> int:
    print(f"\n{'fault':<10}{'requests':>9}{'failed':>8}  outcome")
    for outcome in outcomes:
        verdict = "ok" if not outcome.problems else f"FAIL ({len(outcome.problems)})"
        print(f"{outcome.name:<10}{outcome.requests:>9}{outcome.failed:>8}  {verdict}")
    if path:
        fields = ("name", "tried", "happened", "problems", "requests", "failed", "failures")
        report = [{key: getattr(o, key) for key in fields} for o in outcomes]
        path.write_text(json.dumps(report, indent=2))
    return 1 if any(outcome.problems for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

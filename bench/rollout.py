"""Blue-green rollouts under load: failed requests, versions answered, how sharp each
swap is, deploy and rollback time, and failover when the active colour is killed.

A client on 127.0.0.1 sends 1-row ``/predict`` requests at a steady rate through HAProxy
while ``playbooks/deploy_model.yml`` moves traffic through the given versions, then
``playbooks/rollback.yml`` moves it back, then the active colour's container is killed
(systemd restarts it; HAProxy's backup colour answers meanwhile). Playbooks and the kill
run through ansible-runner against the given inventory: the lab, or the ``bluegreen``
Molecule scenario's (which runs this with ``--check``).

    uv run python bench/rollout.py --inventory inventory/lab --url http://127.0.0.1:8080 \\
        --versions 2 3 4

Per step it reports: requests, failed requests, answers from a third version, the mixed
window (first answer from the new version to the last from the old one: how long the
swap takes to reach every new request), and the time from the trigger until every answer
comes from the new version; and the rate the client kept up. Those durations are the
benchmark (docs/benchmarks.md), measured on a quiet machine.

``--check`` judges behaviour only, so it holds on a busy machine too (the Molecule
scenario runs beside other stages): it exits 1 unless every step succeeded, each deploy
and the rollback saw at least ``--min-requests`` requests and none failed, every answer
came from the two versions of its step, the new version answered, and no request sent
after a playbook had returned got the old version (the swap is done when the playbook
says so). The requests lost to the killed container are reported (the target is none),
not checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import ROOT, Load, Sample, ansible_from_this_env, run_command, run_playbook

KILL = "kill active container"
# The playbooks' runner artifacts (output, events), the newest runs kept.
ARTIFACTS = ROOT / ".cache" / "rollout" / "ansible-runs"


@dataclass
class Step:
    name: str
    started: float
    ended: float = 0.0
    returned: float = 0.0  # when its playbook returned
    ok: bool = False
    detail: str = ""
    report: dict[str, object] = field(default_factory=dict)


def version_before(samples: list[Sample], moment: float) -> str:
    answered = [s.version for s in samples if s.sent < moment and s.status == 200]
    return answered[-1] if answered else ""


def analyse(step: Step, samples: list[Sample], old: str, new: str) -> dict[str, object]:
    """What the clients saw from the trigger of ``step`` until the next step."""
    seen = [s for s in samples if step.started <= s.sent < step.ended]
    failed = [s for s in seen if s.status != 200]
    report: dict[str, object] = {
        "requests": len(seen),
        "failed": len(failed),
        "failures": dict(Counter(s.error for s in failed)),
        "from_version": old,
        "to_version": new,
        "other_versions": sorted({s.version for s in seen if s.status == 200} - {old, new}),
    }
    first_new = min((s.sent for s in seen if s.version == new), default=None)
    last_old = max((s.sent for s in seen if s.version == old), default=step.started)
    if old != new:
        report["old_after_return"] = sum(s.version == old for s in seen if s.sent > step.returned)
    if first_new is not None:
        report["mixed_window_s"] = round(max(0.0, last_old - first_new), 3)
        report["to_all_new_s"] = round(max(first_new, last_old) - step.started, 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "lab")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="HAProxy's frontend")
    parser.add_argument("--versions", nargs="*", default=["2", "3", "4"], help="deploy these")
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument(
        "--min-requests", type=int, default=200, help="per deploy and rollback (--check)"
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between steps")
    parser.add_argument("--no-kill", action="store_true", help="skip the container kill")
    parser.add_argument("--json", type=Path, help="write the report here too")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every claim holds")
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        parser.error("load goes to 127.0.0.1 only")
    inventory = args.inventory.resolve()
    ansible_from_this_env()

    steps: list[Step] = []
    started = time.time()
    with Load(args.url, args.rate, args.threads) as load:
        time.sleep(args.settle)
        plan = [(f"deploy {v}", "deploy_model.yml", {"model_version": v}) for v in args.versions]
        plan.append(("rollback", "rollback.yml", {}))
        for name, playbook, extravars in plan:
            step = Step(name, time.time())
            steps.append(step)
            extravars |= {"bluegreen_actor": "bench/rollout.py", "bluegreen_reason": name}
            step.ok, step.detail = run_playbook(inventory, playbook, extravars, ARTIFACTS)
            step.returned = time.time()
            print(f"{name}: {'ok' if step.ok else 'FAILED ' + step.detail}", flush=True)
            time.sleep(args.settle)
        if not args.no_kill:
            active = version_before(load.samples, time.time())
            step = Step(KILL, time.time())
            steps.append(step)
            colour = _active_colour(args.url)
            step.ok, step.detail = run_command(
                inventory, "model_servers", f"docker kill solar-model-{colour}"
            )
            step.returned = time.time()
            print(f"killed solar-model-{colour} (version {active}): {step.ok}", flush=True)
            # systemd restarts it (RestartSec=2) and the model loads from the cache.
            time.sleep(20)
    ended = time.time()
    samples = sorted(load.samples, key=lambda s: s.sent)

    for i, step in enumerate(steps):
        step.ended = steps[i + 1].started if i + 1 < len(steps) else ended
        old = version_before(samples, step.started)
        if step.name.startswith("deploy"):
            new = step.name.split()[1]
        elif step.name == "rollback":
            new = version_before(samples, step.ended)
        else:  # the kill: the fallback colour answers until the killed one is back
            new = next((s.version for s in samples if s.sent > step.started and s.version
                        and s.version != old), old)  # fmt: skip
        step.report = analyse(step, samples, old, new)
    rate = len(samples) / (ended - started)
    summary = {
        "requests": len(samples),
        "failed": sum(s.status != 200 for s in samples),
        "rate_per_s": round(rate, 1),
        "steps": [asdict(step) for step in steps],
    }
    _print(summary, steps)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    problems = _problems(steps, args.min_requests)
    for problem in problems:
        print(f"FAIL  {problem}")
    return 1 if args.check and problems else 0


def _active_colour(url: str) -> str:
    with urllib.request.urlopen(f"{url}/version", timeout=5) as answer:
        return json.load(answer)["colour"]


def _print(summary: dict[str, object], steps: list[Step]) -> None:
    print(f"\n{summary['requests']} requests at {summary['rate_per_s']}/s, "
          f"{summary['failed']} failed")  # fmt: skip
    print(f"{'step':<24}{'requests':>9}{'failed':>8}{'versions':>12}"
          f"{'mixed s':>9}{'to all new s':>14}")  # fmt: skip
    for step in steps:
        r = step.report
        versions = f"{r['from_version']}->{r['to_version']}"
        print(f"{step.name:<24}{r['requests']:>9}{r['failed']:>8}{versions:>12}"
              f"{r.get('mixed_window_s', '-'):>9}{r.get('to_all_new_s', '-'):>14}")  # fmt: skip
        if r["failures"]:
            kinds = ", ".join(f"{n} {kind}" for kind, n in r["failures"].items())
            print(f"{'':<24}failed: {kinds}")


def _problems(steps: list[Step], min_requests: int) -> list[str]:
    problems = []
    for step in steps:
        r = step.report
        if not step.ok:
            problems.append(f"{step.name}: {step.detail}")
        # A killed container's requests in flight may be lost: reported, not refused.
        if r["failed"] and step.name != KILL:
            problems.append(f"{step.name}: {r['failed']} failed requests")
        if r["other_versions"]:
            problems.append(f"{step.name}: answers from versions {r['other_versions']}")
        if step.name.startswith(("deploy", "rollback")):
            if int(r["requests"]) < min_requests:  # type: ignore[call-overload]
                problems.append(
                    f"{step.name}: {r['requests']} requests, fewer than {min_requests}: "
                    "too few to judge the swap"
                )
            if "mixed_window_s" not in r:
                problems.append(f"{step.name}: version {r['to_version']} never answered")
            if r.get("old_after_return"):
                problems.append(
                    f"{step.name}: {r['old_after_return']} requests sent after the playbook "
                    f"returned got the old version {r['from_version']}"
                )
    return problems


if __name__ == "__main__":
    sys.exit(main())

"""What the lab benchmarks share: a steady client load on HAProxy's frontend, and
playbooks and commands run on an inventory's hosts through ansible-runner.

Imported by ``bench/rollout.py`` and ``bench/reliability.py`` (run as scripts, so this
folder is on ``sys.path``).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ansible_runner

from solar_mlops.ops import playbook_runner
from solar_mlops.ops.playbook_runner import PlaybookFailedError

ROOT = Path(__file__).resolve().parents[1]
# A clear June noon: one row, the smallest request a client sends.
BODY = json.dumps({"rows": [{"time": "2013-06-21T12:00:00-07:00", "ghi": 900, "temp_air": 25}]})
HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Sample:
    sent: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    version: str
    error: str = ""  # what went wrong: the HTTP status, or the exception's name


class Load:
    """``threads`` clients with keep-alive connections, each on a fixed schedule, so the
    total rate is steady whatever the latency (a slow answer is followed by catch-up)."""

    def __init__(self, url: str, rate: float, threads: int) -> None:
        self.url = f"{url}/predict"
        self.interval = threads / rate
        self.threads = [
            threading.Thread(target=self._client, args=(i * self.interval / threads,), daemon=True)
            for i in range(threads)
        ]
        self.samples: list[Sample] = []
        self._stop = threading.Event()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join()

    def _client(self, offset: float) -> None:
        # http.client rather than requests: a lighter client leaves the two cores to the
        # stack under test, as a remote client would.
        url = urlsplit(self.url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        due = time.monotonic() + offset
        while not self._stop.is_set():
            if (wait := due - time.monotonic()) > 0:
                self._stop.wait(wait)
            due += self.interval
            sent = time.time()
            try:
                connection.request("POST", url.path, BODY, HEADERS)
                answer = connection.getresponse()
                payload = answer.read()
                ok = answer.status == 200
                version = json.loads(payload).get("model_version", "") if ok else ""
                error = "" if ok else f"HTTP {answer.status}"
                self.samples.append(Sample(sent, answer.status, version, error))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                connection.close()  # reconnects on the next request
                self.samples.append(Sample(sent, 0, "", type(exc).__name__))


def run_playbook(
    inventory: Path, playbook: str, extravars: dict[str, str], artifacts: Path
) -> tuple[bool, str]:
    """Run ``playbooks/<playbook>`` as the flows do (``solar_mlops.ops.playbook_runner``):
    (succeeded, the playbook's own reason when it failed). The runner's artifacts (output,
    events) stay in ``artifacts``, the newest runs kept."""
    try:
        playbook_runner.run_playbook(
            f"playbooks/{playbook}",
            extravars=extravars,
            inventory=inventory,
            project_dir=ROOT,
            artifacts_dir=artifacts,
            on_event=lambda _event: None,
        )
    except PlaybookFailedError as exc:
        return False, exc.result.reason
    return True, ""


def ansible_from_this_env() -> None:
    """ansible-runner starts ansible-playbook from PATH: use this environment's."""
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def run_command(inventory: Path, hosts: str, command: str) -> tuple[bool, str]:
    """Run ``command`` on ``hosts``: (succeeded everywhere, the output of each host that
    answered, one line each, or what failed)."""
    with tempfile.TemporaryDirectory() as private:
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(ROOT),
            inventory=str(inventory),
            host_pattern=hosts,
            module="ansible.builtin.command",
            module_args=command,
            quiet=True,
        )
        if result.rc != 0:
            return False, _failure(result)
        answers = [event["event_data"]["res"].get("stdout", "") for event in result.events
                   if event.get("event") == "runner_on_ok"]  # fmt: skip
        return True, "\n".join(answers)


def _failure(result: ansible_runner.Runner) -> str:
    for event in result.events:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            res = event["event_data"].get("res", {})
            return str(res.get("msg") or res.get("stderr") or res)[:600]
    return f"{result.status} (rc {result.rc}): {result.stdout.read()[-600:]}"

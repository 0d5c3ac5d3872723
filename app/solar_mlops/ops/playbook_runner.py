"""Run the repository's Ansible playbooks from Python (the Prefect deploy and rollback
flows) through ansible-runner: every event goes to a callback (by default one log line
per task result), the runner's artifacts are kept and rotated, and a failure raises
PlaybookFailedError with the failing task, its host and the playbook's own message."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner

from solar_mlops.errors import SolarMLOpsError

DEPLOY_PLAYBOOK = "playbooks/deploy_model.yml"
ROLLBACK_PLAYBOOK = "playbooks/rollback.yml"
# Runs kept in the artifacts folder; older ones are deleted when a run starts.
KEEP_RUNS = 20
DEFAULT_ARTIFACTS_DIR = Path.home() / ".solar-mlops" / "ansible-runs"

Event = dict[str, Any]
EventCallback = Callable[[Event], None]

LOG = logging.getLogger(__name__)

# One folder per run: <UTC time>-<playbook>-<8 hex>. The runner's rotation deletes every
# entry of the artifacts folder beyond the newest ones, so only such folders may live there.
_RUN_NAME = re.compile(r"^\d{8}T\d{6}Z-[\w.-]+-[0-9a-f]{8}$")
# Values of these environment variables are blanked in the kept `command` file.
_SECRET_NAME = re.compile(r"AUTH|TOKEN|PASSW|SECRET|CREDENTIAL|_KEY$", re.IGNORECASE)
# Extra vars are Jinja2 templates to Ansible: free text must not carry template markers.
_JINJA = re.compile(r"\{\{|\{%|\{#")
_POSITIVE_INT = re.compile(r"^[1-9][0-9]*$")


@dataclass(frozen=True)
class HostStats:
    """The recap of one host (what `PLAY RECAP` prints)."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed on a host (or could not reach it), with Ansible's message."""

    host: str
    task: str
    msg: str
    unreachable: bool = False

    def __str__(self) -> str:
        what = "could not reach" if self.unreachable else "failed on"
        return f"task '{self.task}' {what} {self.host}: {self.msg}"


@dataclass(frozen=True)
class PlaybookResult:
    """What a run did: the runner's status and exit code, each host's recap, the task
    failures that stopped hosts, and where its artifacts are (stdout, job_events/)."""

    playbook: str
    status: str
    rc: int
    artifacts: Path
    stats: dict[str, HostStats] = field(default_factory=dict)
    failures: tuple[TaskFailure, ...] = ()
    # Empty when the run succeeded; otherwise why it did not, in the playbook's words.
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        return not self.reason


class PlaybookFailedError(SolarMLOpsError):
    """An Ansible playbook failed. The message names the failing task, its host and the
    playbook's own reason; ``result`` holds the run (status, host recaps, artifacts)."""

    def __init__(self, message: str, result: PlaybookResult) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[PlaybookFailedError], tuple[str, PlaybookResult]]:
        # Unpickling rebuilds an exception from these arguments (e.g. in a persisted state).
        return type(self), (str(self), self.result)


def ansible_tree() -> Path:
    """The folder with ansible.cfg, playbooks/ and roles/: ANSIBLE_CONFIG's folder when
    set (the Prefect worker image points it at /opt/solar-mlops/ansible.cfg), else the
    checkout this package runs from."""
    if config := os.environ.get("ANSIBLE_CONFIG"):
        return Path(config).resolve().parent
    checkout = Path(__file__).resolve().parents[3]  # <checkout>/app/solar_mlops/ops/<this>
    if (checkout / "ansible.cfg").is_file():
        return checkout
    raise FileNotFoundError(
        "Cannot find the Ansible tree (ansible.cfg, playbooks/, roles/): set ANSIBLE_CONFIG "
        "to its ansible.cfg or pass project_dir."
    )


def deploy_model(
    model_version: int | str,
    *,
    actor: str | None = None,
    reason: str = "",
    **options: Any,
) -> PlaybookResult:
    """Blue-green deployment of one registered version (playbooks/deploy_model.yml).
    ``actor`` and ``reason`` go to the deployment history; ``options`` are run_playbook's."""
    extravars = {"model_version": _model_version(model_version), **_who(actor, reason)}
    return run_playbook(DEPLOY_PLAYBOOK, extravars=extravars, **options)


def rollback(*, actor: str | None = None, reason: str = "", **options: Any) -> PlaybookResult:
    """Send traffic back to the other colour (playbooks/rollback.yml)."""
    return run_playbook(ROLLBACK_PLAYBOOK, extravars=_who(actor, reason), **options)


def run_playbook(
    playbook: str | Path,
    *,
    extravars: Mapping[str, Any] | None = None,
    inventory: str | Path | None = None,
    artifacts_dir: str | Path = DEFAULT_ARTIFACTS_DIR,
    keep_runs: int = KEEP_RUNS,
    on_event: EventCallback | None = None,
    project_dir: str | Path | None = None,
    timeout: int | None = None,
) -> PlaybookResult:
    """Run ``playbook`` (a path in the Ansible tree, or an absolute path) and return its
    result; raise PlaybookFailedError when it fails.

    ``inventory``: a path (relative ones are in the tree); by default what Ansible would
    use (ANSIBLE_INVENTORY, else ansible.cfg's). ``on_event`` gets every runner event in
    order (default: log_event). The run's artifacts go to ``artifacts_dir/<run>``; the
    folder keeps the newest ``keep_runs`` runs, so give it a folder of its own.
    ``timeout``: seconds before the run is stopped (default: none).
    """
    tree = Path(project_dir).resolve() if project_dir is not None else ansible_tree()
    path = _playbook_path(tree, playbook)
    name = path.relative_to(tree).as_posix() if path.is_relative_to(tree) else str(path)
    inventory_path = _inventory_path(tree, inventory) if inventory is not None else None
    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1 (the run itself), got {keep_runs}")
    runs = Path(artifacts_dir).resolve()
    _check_artifacts_dir(runs)
    env = _environment(tree)
    collector = _Collector(on_event or log_event)
    ident = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{path.stem}-{uuid.uuid4().hex[:8]}"
    artifacts = runs / ident

    with tempfile.TemporaryDirectory(prefix="solar-ansible-") as private_dir:
        try:
            runner = ansible_runner.run(
                private_data_dir=private_dir,
                project_dir=str(tree),
                playbook=str(path),
                inventory=str(inventory_path) if inventory_path else None,
                extravars=dict(extravars or {}),
                envvars=env,
                artifact_dir=str(runs),
                ident=ident,
                rotate_artifacts=keep_runs,
                event_handler=collector,
                # The events are the output: nothing on our stdout, no extra vars on disk.
                quiet=True,
                suppress_env_files=True,
                timeout=timeout,
            )
        finally:
            _redact_command(artifacts / "command")
    result = collector.result(name, runner.status, runner.rc, artifacts, timeout)
    if not result.succeeded:
        raise PlaybookFailedError(
            f"{name} failed: {result.reason} (runner artifacts: {artifacts})", result
        )
    return result


def log_event(event: Event, logger: logging.Logger | logging.LoggerAdapter = LOG) -> None:
    """Log a runner event as Ansible's own output would say it: one line per task result,
    play, retry, warning and host recap; other events at DEBUG."""
    kind = event.get("event", "")
    data = event.get("event_data", {})
    host, task = data.get("host", "?"), _task_name(data)
    res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
    if kind == "playbook_on_play_start":
        logger.info("PLAY %s (hosts: %s)", data.get("name", ""), data.get("pattern", ""))
    elif kind == "runner_on_ok":
        # What a debug task says is the point of it (the bluegreen role reports with them).
        debug = (data.get("resolved_action") or "").endswith("debug") and "msg" in res
        said = f": {res['msg']}" if debug else ""
        state = "changed" if res.get("changed") else "ok"
        logger.info("%s: [%s] %s%s", state, host, task, said)
    elif kind == "runner_on_failed":
        level = logging.WARNING if data.get("ignore_errors") else logging.ERROR
        ignored = " (ignored)" if data.get("ignore_errors") else ""
        logger.log(level, "failed%s: [%s] %s: %s", ignored, host, task, _message(res))
    elif kind == "runner_on_unreachable":
        logger.error("unreachable: [%s] %s: %s", host, task, _message(res))
    elif kind == "runner_on_skipped":
        logger.info("skipping: [%s] %s", host, task)
    elif kind == "runner_retry":
        attempt, retries = res.get("attempts", "?"), res.get("retries", "?")
        logger.info("retrying: [%s] %s (attempt %s of %s)", host, task, attempt, retries)
    elif kind == "warning":
        logger.warning("%s", event.get("stdout", "").strip())
    elif kind == "playbook_on_stats":
        for name, stats in _host_stats(data).items():
            recap = " ".join(f"{key}={value}" for key, value in vars(stats).items())
            logger.info("recap: %s %s", name, recap)
    else:
        logger.debug("%s %s", kind, event.get("stdout", "").strip())


class _Collector:
    """The runner's event handler: hands each event on, keeps what the result needs."""

    def __init__(self, on_event: EventCallback) -> None:
        self.on_event = on_event
        self.patterns: list[str] = []
        self.task = ""
        self.last_failure: dict[str, TaskFailure] = {}
        self.errors: list[str] = []
        self.stats: dict[str, HostStats] = {}

    def __call__(self, event: Event) -> bool:
        kind, data = event.get("event", ""), event.get("event_data", {})
        if kind == "playbook_on_play_start":
            self.patterns.append(data.get("pattern", ""))
        elif kind == "playbook_on_task_start":
            self.task = _task_name(data)
        elif kind == "runner_on_unreachable" or (
            kind == "runner_on_failed" and not data.get("ignore_errors")
        ):
            # A rescued failure is followed by later tasks: a host's last failure stopped it.
            host = data.get("host", "?")
            self.last_failure[host] = TaskFailure(
                host,
                _task_name(data),
                _message(data.get("res", {})),
                unreachable=kind == "runner_on_unreachable",
            )
        elif kind in ("verbose", "error"):
            # Errors before any task runs (syntax, unknown module) come as plain output.
            self.errors.append(event.get("stdout", "").strip())
        elif kind == "playbook_on_stats":
            self.stats = _host_stats(data)
        try:
            self.on_event(event)
        except Exception:
            # A broken log handler must not stop a deployment half-way.
            LOG.exception("the event callback failed on a %s event", kind)
        return True  # keep the event in the artifacts

    def result(
        self, playbook: str, status: str, rc: int, artifacts: Path, timeout: int | None
    ) -> PlaybookResult:
        stopped = [h for h, s in self.stats.items() if s.failed or s.unreachable]
        failures = tuple(self.last_failure[h] for h in stopped if h in self.last_failure)
        if status == "timeout":
            # Stopping ansible-playbook does not stop a module already running on a host.
            reason = (
                f"it did not finish within {timeout} s and was stopped during task "
                f"'{self.task}', which may still be running on its hosts"
            )
        elif failures:
            reason = "; ".join(map(str, failures))
        elif status != "successful" or rc != 0:
            reason = self._error_text() or f"ansible-playbook exited with code {rc}"
        elif not self.stats:
            patterns = ", ".join(dict.fromkeys(self.patterns))
            reason = (
                f"no host of the inventory is in its plays' groups ({patterns}): nothing ran. "
                "Check the inventory (the inventory argument, ANSIBLE_INVENTORY or ansible.cfg)."
            )
        else:
            reason = ""
        return PlaybookResult(playbook, status, rc, artifacts, self.stats, failures, reason)

    def _error_text(self) -> str:
        """The first error Ansible printed, up to its first blank line (with its origin)."""
        start = next((i for i, line in enumerate(self.errors) if "ERROR" in line), None)
        if start is None:
            return ""
        lines = []
        for line in self.errors[start:]:
            if not line:
                break
            lines.append(line)
        return " ".join(lines)


def _task_name(data: Mapping[str, Any]) -> str:
    task = data.get("task", "")
    return f"{data['role']} : {task}" if data.get("role") else task


def _message(res: Mapping[str, Any]) -> str:
    """Ansible's message for a failed result: the failed items' messages for a loop, and
    the end of stderr when a command failed."""
    if isinstance(res.get("results"), list):
        items = [r for r in res["results"] if isinstance(r, dict) and r.get("failed")]
        if items:
            return "; ".join(_message(item) for item in items)
    message = str(res.get("msg") or "").strip()
    stderr = str(res.get("stderr") or res.get("module_stderr") or "").strip()
    if stderr:
        message = f"{message} (stderr: {stderr[-500:]})" if message else stderr[-500:]
    return message or json.dumps(res, default=str)[:500]


def _host_stats(data: Mapping[str, Any]) -> dict[str, HostStats]:
    columns = {
        "ok": "ok",
        "changed": "changed",
        "failed": "failures",
        "unreachable": "dark",
        "skipped": "skipped",
        "rescued": "rescued",
        "ignored": "ignored",
    }
    hosts = sorted({h for key in [*columns.values(), "processed"] for h in data.get(key) or {}})
    return {
        host: HostStats(**{f: (data.get(key) or {}).get(host, 0) for f, key in columns.items()})
        for host in hosts
    }


def _model_version(value: int | str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not _POSITIVE_INT.match(text):
        raise ValueError(
            f"model_version must be a registered model version, a positive whole number "
            f"(e.g. 7); got {value!r}"
        )
    return int(text)


def _who(actor: str | None, reason: str) -> dict[str, str]:
    """The history's bluegreen_actor and bluegreen_reason (the role's defaults when unset)."""
    extravars = {"bluegreen_reason": reason}
    if actor is not None:
        if not actor.strip():
            raise ValueError("actor must name who asks for the change (or be left out)")
        extravars["bluegreen_actor"] = actor
    for key, text in extravars.items():
        if _JINJA.search(text):
            raise ValueError(
                f"{key.removeprefix('bluegreen_')} must not contain '{{{{', '{{%' or '{{#' "
                f"(Ansible would evaluate it as a template); got {text!r}"
            )
    return extravars


def _playbook_path(tree: Path, playbook: str | Path) -> Path:
    path = Path(playbook) if Path(playbook).is_absolute() else tree / playbook
    if not path.is_file():
        known = ", ".join(
            p.relative_to(tree).as_posix() for p in sorted(tree.glob("playbooks/*.yml"))
        )
        raise ValueError(f"No playbook {playbook} in {tree}; the tree has: {known or 'none'}")
    return path.resolve()


def _inventory_path(tree: Path, inventory: str | Path) -> Path:
    path = Path(inventory) if Path(inventory).is_absolute() else tree / inventory
    if not path.exists():
        raise ValueError(f"No inventory at {path} (relative paths are in {tree})")
    return path.resolve()


def _check_artifacts_dir(artifacts_dir: Path) -> None:
    """Refuse a folder that holds anything but runs: the runner's rotation would delete it."""
    if not artifacts_dir.is_dir():
        return
    foreign = [p.name for p in artifacts_dir.iterdir() if not _RUN_NAME.match(p.name)]
    if foreign:
        raise ValueError(
            f"{artifacts_dir} holds other things than playbook runs ({', '.join(foreign[:3])}); "
            "old runs are deleted from it, so give the artifacts a folder of their own"
        )


def _environment(tree: Path) -> dict[str, str]:
    """Ansible reads the tree's ansible.cfg whatever the caller's folder; output without
    colours (the artifacts are read as text); SSH host keys checked unless the
    environment says otherwise; ansible-playbook found in this interpreter's
    environment even when it is not on PATH (a venv's python run directly)."""
    env = {
        "ANSIBLE_CONFIG": str(tree / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner turns SSH host key checking off when the environment does not
        # say; keep Ansible's default (the worker's env file says it explicitly).
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
    }
    if shutil.which("ansible-playbook") is None:
        scripts = Path(sys.executable).parent
        if not (scripts / "ansible-playbook").exists():
            raise FileNotFoundError(
                "ansible-playbook is not installed: install the `deploy` dependency group "
                "(uv sync --group deploy)"
            )
        env["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def _redact_command(command_file: Path) -> None:
    """The runner keeps the whole environment of the run in `command`; the worker's holds
    API credentials, which have no business in kept artifacts."""
    if not command_file.is_file():
        return
    command = json.loads(command_file.read_text(encoding="utf-8"))
    env = command.get("env") or {}
    command["env"] = {k: "<redacted>" if _SECRET_NAME.search(k) else v for k, v in env.items()}
    command_file.write_text(json.dumps(command, ensure_ascii=False), encoding="utf-8")

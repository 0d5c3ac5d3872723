"""Running playbooks through ansible-runner (solar_mlops.ops.playbook_runner): the
repository's own deploy and rollback playbooks and small playbooks written here, run for
real against this machine (ansible_connection=local) or an address nothing listens on."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from solar_mlops.ops.playbook_runner import (
    DEPLOY_PLAYBOOK,
    HostStats,
    PlaybookFailedError,
    deploy_model,
    rollback,
    run_playbook,
)

TINY = """
- name: Tiny
  hosts: lb
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello from {{ inventory_hostname }}
    - name: Show a variable
      ansible.builtin.debug:
        var: inventory_hostname
    - name: Change something
      ansible.builtin.command: "true"
    - name: Skip something
      ansible.builtin.debug:
        msg: never
      when: false
"""

# A failure that is rescued, then one that is not: only the second stopped the host.
FAILING = """
- name: Failing
  hosts: lb
  gather_facts: false
  tasks:
    - name: Try the first way
      block:
        - name: First way
          ansible.builtin.fail:
            msg: the first way is closed
      rescue:
        - name: Give up
          ansible.builtin.assert:
            that: answer == 42
            fail_msg: The answer is {{ answer }}, not 42. Set it with -e answer=42.
            quiet: true
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """This machine as the only load balancer and model server, reached without SSH."""
    path = tmp_path / "hosts.ini"
    path.write_text(
        f"[lb]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[model_servers]\nlocalhost\n"
    )
    return path


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_playbook_runs_and_reports(tmp_path: Path, inventory: Path, artifacts: Path) -> None:
    events: list[dict[str, Any]] = []
    result = run_playbook(
        write(tmp_path, "tiny.yml", TINY),
        inventory=inventory,
        artifacts_dir=artifacts,
        on_event=events.append,
    )

    assert result.succeeded and result.reason == ""
    assert (result.status, result.rc) == ("successful", 0)
    assert result.stats == {"localhost": HostStats(ok=3, changed=1, skipped=1)}
    assert result.failures == ()
    # Every event, in the order Ansible emitted them.
    counters = [event["counter"] for event in events]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert events[0]["event"] == "playbook_on_start"
    assert events[-1]["event"] == "playbook_on_stats"
    results = [
        (event["event"], event["event_data"]["task"])
        for event in events
        if event["event"] in ("runner_on_ok", "runner_on_skipped")
    ]
    assert results == [
        ("runner_on_ok", "Say hello"),
        ("runner_on_ok", "Show a variable"),
        ("runner_on_ok", "Change something"),
        ("runner_on_skipped", "Skip something"),
    ]
    # The artifacts are kept: Ansible's output and every event as a file.
    assert result.artifacts.parent == artifacts.resolve()
    assert "hello from localhost" in (result.artifacts / "stdout").read_text()
    assert len(list((result.artifacts / "job_events").glob("*.json"))) == len(events)


def test_events_are_logged_one_line_per_task_result(
    tmp_path: Path, inventory: Path, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="solar_mlops.ops.playbook_runner")
    run_playbook(write(tmp_path, "tiny.yml", TINY), inventory=inventory, artifacts_dir=artifacts)

    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        "PLAY Tiny (hosts: lb)",
        "ok: [localhost] Say hello: hello from localhost",
        "ok: [localhost] Show a variable",
        "changed: [localhost] Change something",
        "skipping: [localhost] Skip something",
        "recap: localhost ok=3 changed=1 failed=0 unreachable=0 skipped=1 rescued=0 ignored=0",
    ]


def test_the_tree_is_where_ansible_config_points(
    tmp_path: Path, inventory: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the Prefect worker image: ANSIBLE_CONFIG=/opt/solar-mlops/ansible.cfg.
    tree = tmp_path / "opt"
    (tree / "playbooks").mkdir(parents=True)
    (tree / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    write(tree / "playbooks", "hello.yml", TINY)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(tree / "ansible.cfg"))

    result = run_playbook("playbooks/hello.yml", inventory=inventory, artifacts_dir=artifacts)

    assert result.playbook == "playbooks/hello.yml" and result.succeeded
    with pytest.raises(ValueError, match=r"the tree has: playbooks/hello\.yml$"):
        run_playbook(DEPLOY_PLAYBOOK, artifacts_dir=artifacts)


def test_old_runs_are_rotated(tmp_path: Path, inventory: Path, artifacts: Path) -> None:
    # Two earlier runs, the older first.
    earlier = [artifacts / f"2026010{day}T000000Z-tiny-0000000{day}" for day in (1, 2)]
    for day, run in enumerate(earlier, start=1):
        (run / "job_events").mkdir(parents=True)
        os.utime(run, (day * 86400, day * 86400))

    result = run_playbook(
        write(tmp_path, "tiny.yml", TINY), inventory=inventory, artifacts_dir=artifacts, keep_runs=2
    )

    assert sorted(artifacts.iterdir()) == [earlier[1], result.artifacts]


def test_the_failure_that_stopped_the_host_is_the_reason(
    tmp_path: Path, inventory: Path, artifacts: Path
) -> None:
    with pytest.raises(PlaybookFailedError) as caught:
        run_playbook(
            write(tmp_path, "failing.yml", FAILING),
            inventory=inventory,
            artifacts_dir=artifacts,
            extravars={"answer": 41},
        )

    message = str(caught.value)
    assert "task 'Give up' failed on localhost" in message
    assert "The answer is 41, not 42. Set it with -e answer=42." in message
    assert "first way" not in message  # rescued: not why the run failed
    result = caught.value.result
    assert (result.status, result.rc) == ("failed", 2)
    assert result.stats["localhost"].failed == 1
    assert result.stats["localhost"].rescued == 1
    assert str(result.artifacts) in message


def test_deploy_without_a_version_fails_with_the_playbook_s_message(
    inventory: Path, artifacts: Path
) -> None:
    with pytest.raises(PlaybookFailedError) as caught:
        run_playbook(DEPLOY_PLAYBOOK, inventory=inventory, artifacts_dir=artifacts)

    message = str(caught.value)
    assert message.startswith("playbooks/deploy_model.yml failed: task 'Check the request'")
    assert "Say which registered version to deploy, as a number" in message
    # The exception survives pickling with its result (a persisted flow state).
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == message
    assert copy.result == caught.value.result


def test_deploy_refuses_an_inventory_without_model_servers(tmp_path: Path, artifacts: Path) -> None:
    hosts = tmp_path / "lb-only.ini"
    hosts.write_text(
        f"[lb]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    with pytest.raises(PlaybookFailedError) as caught:
        deploy_model(7, inventory=hosts, artifacts_dir=artifacts)
    assert "has no host in group 'model_servers'" in str(caught.value)
    assert "traffic stays where it is" in str(caught.value)


def test_deploy_passes_the_version_and_who_asked(inventory: Path, artifacts: Path) -> None:
    # The version passes the playbook's check; this machine is no HAProxy host, so the
    # bluegreen role stops at reading the switch's description.
    with pytest.raises(PlaybookFailedError) as caught:
        deploy_model(
            "7",
            actor="flow-run/brave-otter",
            reason="drift",
            inventory=inventory,
            artifacts_dir=artifacts,
        )

    assert "Read how to reach the switch" in str(caught.value)
    assert "File not found: /etc/ansible/facts.d/haproxy.fact" in str(caught.value)
    command = json.loads((caught.value.result.artifacts / "command").read_text())
    extravars = json.loads(command["command"][command["command"].index("-e") + 1])
    assert extravars == {
        "model_version": 7,
        "bluegreen_actor": "flow-run/brave-otter",
        "bluegreen_reason": "drift",
    }


def test_an_unreachable_host_is_named(tmp_path: Path, artifacts: Path) -> None:
    # Nothing listens on port 1: SSH is refused at once (the first task, debug, runs here).
    hosts = write(tmp_path, "hosts.ini", "[lb]\nghost ansible_host=127.0.0.1 ansible_port=1\n")
    with pytest.raises(
        PlaybookFailedError, match=r"task 'Change something' could not reach ghost: .*port 1"
    ):
        run_playbook(write(tmp_path, "tiny.yml", TINY), inventory=hosts, artifacts_dir=artifacts)


def test_an_error_before_any_task_is_the_reason(
    tmp_path: Path, inventory: Path, artifacts: Path
) -> None:
    broken = write(
        tmp_path, "broken.yml", TINY.replace("ansible.builtin.command", "no.such.module")
    )
    with pytest.raises(
        PlaybookFailedError,
        match=r"couldn't resolve module/action 'no\.such\.module'.*Origin: .*broken\.yml",
    ):
        run_playbook(broken, inventory=inventory, artifacts_dir=artifacts)


def test_a_run_on_no_host_fails(tmp_path: Path, inventory: Path, artifacts: Path) -> None:
    # Ansible itself exits 0 when no host is in the play's group: a deployment did nothing.
    elsewhere = write(tmp_path, "elsewhere.yml", TINY.replace("hosts: lb", "hosts: monitoring"))
    with pytest.raises(PlaybookFailedError, match=r"no host .* \(monitoring\): nothing ran"):
        run_playbook(elsewhere, inventory=inventory, artifacts_dir=artifacts)


def test_a_run_that_takes_too_long_is_stopped(
    tmp_path: Path, inventory: Path, artifacts: Path
) -> None:
    slow = write(tmp_path, "slow.yml", TINY.replace('command: "true"', "command: sleep 10"))
    with pytest.raises(PlaybookFailedError) as caught:
        run_playbook(slow, inventory=inventory, artifacts_dir=artifacts, timeout=2)

    assert "did not finish within 2 s" in str(caught.value)
    assert "during task 'Change something'" in str(caught.value)
    assert caught.value.result.status == "timeout"


def test_a_broken_callback_does_not_stop_the_run(
    tmp_path: Path, inventory: Path, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("log sink down")

    result = run_playbook(
        write(tmp_path, "tiny.yml", TINY),
        inventory=inventory,
        artifacts_dir=artifacts,
        on_event=broken,
    )

    assert result.succeeded and result.stats["localhost"].changed == 1
    assert "the event callback failed" in caplog.text


def test_the_kept_environment_has_no_credentials(
    tmp_path: Path, inventory: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:s3cret")
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    playbook = write(
        tmp_path,
        "env.yml",
        TINY.replace(
            "hello from {{ inventory_hostname }}",
            "length {{ lookup('env', 'PREFECT_API_AUTH_STRING') | length }}",
        ),
    )
    events: list[dict[str, Any]] = []
    result = run_playbook(
        playbook, inventory=inventory, artifacts_dir=artifacts, on_event=events.append
    )

    # The playbook saw it (12 characters); the kept command file does not hold it.
    said = [
        e["event_data"]["res"]["msg"]
        for e in events
        if e["event"] == "runner_on_ok" and e["event_data"]["task"] == "Say hello"
    ]
    assert said == ["length 12"]
    command = json.loads((result.artifacts / "command").read_text())
    assert command["env"]["PREFECT_API_AUTH_STRING"] == "<redacted>"
    assert command["env"]["ANSIBLE_CONFIG"].endswith("ansible.cfg")
    # ansible-runner's default would be False; Ansible's is to check.
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "s3cret" not in "".join(
        p.read_text() for p in result.artifacts.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("version", ["abc", "0", -3, "7.5", "", True])
def test_a_bad_version_is_refused_before_anything_runs(version: Any, artifacts: Path) -> None:
    with pytest.raises(ValueError, match="positive whole number"):
        deploy_model(version, artifacts_dir=artifacts)
    assert not artifacts.exists()


def test_templates_in_free_text_are_refused(artifacts: Path) -> None:
    with pytest.raises(ValueError, match="reason must not contain"):
        rollback(reason="{{ lookup('pipe', 'id') }}", artifacts_dir=artifacts)
    assert not artifacts.exists()


def test_an_unknown_playbook_is_refused(artifacts: Path) -> None:
    with pytest.raises(ValueError, match=r"No playbook playbooks/deploy\.yml .*deploy_model\.yml"):
        run_playbook("playbooks/deploy.yml", artifacts_dir=artifacts)


def test_a_shared_artifacts_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="a folder of their own"):
        run_playbook(DEPLOY_PLAYBOOK, artifacts_dir=tmp_path)
    assert (tmp_path / "notes.txt").exists()

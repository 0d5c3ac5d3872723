"""The static inventories (lab, lab-multi, vagrant, vagrant-multi) and the Vagrantfile: the same
groups everywhere, the shared wiring renders for every host, and Vagrant accepts both
layouts (inventory/ec2 is tested against moto in test_ec2_inventory.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import tiers
from servers import venv_bin

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("lb", "model_servers", "control", "monitoring")
# Wired values each group's hosts need (inventory/shared/platform.yml).
WIRING = {
    "control": [
        "mlflow_backend_store_uri",
        "mlflow_backend_store_password",
        "prefect_database_url",
        "prefect_database_password",
        "prefect_worker_database_passwords",
        "postgres_databases",
    ],
    "model_servers": [
        "model_server_mlflow_tracking_uri",
        "model_server_prediction_store_url",
        "model_server_prediction_store_password",
    ],
    "lb": ["haproxy_model_servers", "haproxy_stats_password", "bluegreen_pushgateway_url"],
    "monitoring": ["grafana_prometheus_url", "grafana_admin_password"],
}


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def succeeded(*command: str, env: dict[str, str] | None = None) -> str:
    result = run(*command, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rendered(inventory: str, host: str, variables: list[str]) -> dict:
    """Variables of a host as a play sees them, templated (nothing is contacted)."""
    expression = "{{ dict(_names | zip(query('ansible.builtin.vars', *_names))) }}"
    out = succeeded(
        venv_bin("ansible"), host, "-i", inventory, "-m", "ansible.builtin.debug",
        "-a", json.dumps({"msg": expression}), "-e", json.dumps({"_names": variables}),
        "-e", "ansible_connection=local",
        env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )  # fmt: skip
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"][host]["msg"]


STATIC = ["inventory/lab", "inventory/lab-multi", "inventory/vagrant", "inventory/vagrant-multi"]


@pytest.mark.parametrize("inventory", STATIC)
def test_every_group_has_hosts_and_the_wiring_renders(inventory: str) -> None:
    listing = json.loads(succeeded(venv_bin("ansible-inventory"), "-i", inventory, "--list"))
    for group in GROUPS:
        assert listing.get(group, {}).get("hosts"), f"{inventory}: no host in {group}"
    for group, variables in WIRING.items():
        host = listing[group]["hosts"][0]
        values = rendered(inventory, host, variables)
        for variable in variables:
            assert values[variable], (inventory, host, variable)
    lb = listing["lb"]["hosts"][0]
    servers = rendered(inventory, lb, ["haproxy_model_servers"])["haproxy_model_servers"]
    assert [server["name"] for server in servers] == listing["model_servers"]["hosts"]
    control = listing["control"]["hosts"][0]
    # The URLs carry no password: the roles put it in a password file (PGPASSFILE).
    urls = rendered(inventory, control, ["mlflow_backend_store_uri", "prefect_database_url"])
    assert urls["mlflow_backend_store_uri"].startswith("postgresql+psycopg://mlflow@")
    assert urls["prefect_database_url"].startswith("postgresql+asyncpg://prefect@")


@pytest.mark.parametrize(
    ("inventory", "host", "network"),
    [
        ("inventory/vagrant", "solar", "192.168.56.0/24"),
        ("inventory/vagrant-multi", "solar-control", "192.168.56.0/24"),
        ("inventory/lab-multi", "lab-control", "172.30.56.0/24"),
    ],
)
def test_an_inventory_overrides_the_shared_wiring(inventory: str, host: str, network: str) -> None:
    # The shared file sorts first in group_vars/all, so the inventory's own files win:
    # the services listen on every address of the VM, Postgres admits the private network.
    values = rendered(inventory, host, ["solar_listen_address", "postgres_hba_networks"])
    assert values["solar_listen_address"] == "0.0.0.0"
    assert network in values["postgres_hba_networks"]


@pytest.mark.parametrize("inventory", STATIC)
def test_the_deploy_key_works_from_the_control_hosts_only(inventory: str) -> None:
    listing = json.loads(succeeded(venv_bin("ansible-inventory"), "-i", inventory, "--list"))
    control = listing["control"]["hosts"][0]
    address = rendered(inventory, control, ["solar_address"])["solar_address"]
    for host in listing["lb"]["hosts"] + listing["model_servers"]["hosts"]:
        allowed = rendered(inventory, host, ["deploy_access_from"])["deploy_access_from"]
        assert sorted(allowed) == sorted({address, "127.0.0.1", "::1"}), (host, allowed)


@pytest.fixture
def vagrant() -> str:
    tiers.require("vagrant")
    path = shutil.which("vagrant")
    assert path, "vagrant is missing: make test-deps installs it"
    return path


@pytest.mark.vagrant
@pytest.mark.parametrize("layout", ["all-in-one", "multi"])
def test_vagrant_validates_both_layouts(vagrant: str, layout: str) -> None:
    out = succeeded(vagrant, "validate", env={"SOLAR_VAGRANT_LAYOUT": layout})
    assert "validated successfully" in out


@pytest.mark.vagrant
def test_vagrant_names_an_unknown_layout(vagrant: str) -> None:
    result = run(vagrant, "validate", env={"SOLAR_VAGRANT_LAYOUT": "three"})
    assert result.returncode != 0
    assert "must be all-in-one or multi" in result.stderr

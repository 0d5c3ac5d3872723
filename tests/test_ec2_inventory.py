"""inventory/ec2 (amazon.aws.aws_ec2) against moto's EC2 on 127.0.0.1: the tagged,
running instances land in the platform's groups, everything else stays out."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from servers import moto_server, venv_bin

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
# moto accepts any credentials; these never leave 127.0.0.1.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
FLEET = {
    "solar-lb": "lb",
    "solar-model1": "model_servers",
    "solar-model2": "model_servers",
    "solar-control": "control,monitoring",
}


@pytest.fixture(scope="module")
def ec2_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def launch(ec2, name: str, tags: dict[str, str]) -> dict:  # type: ignore[no-untyped-def]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tag_list = [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in tags.items()]
    reservation = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.medium",
        TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
    )
    return reservation["Instances"][0]


def plain(value: object) -> object:
    """A value as written, without ansible-inventory's marker for untrusted text."""
    return value["__ansible_unsafe"] if isinstance(value, dict) else value


def ansible_inventory(endpoint: str) -> dict:
    env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        [venv_bin("ansible-inventory"), "-i", "inventory/ec2", "--list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_tagged_running_instances_land_in_their_groups(ec2_endpoint: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=ec2_endpoint, **{
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    })  # fmt: skip
    fleet = {
        name: launch(ec2, name, {"Project": "solar-mlops", "solar-mlops:groups": groups})
        for name, groups in FLEET.items()
    }
    launch(ec2, "someone-else", {"Project": "another", "solar-mlops:groups": "lb"})
    stopped = launch(ec2, "solar-old", {"Project": "solar-mlops", "solar-mlops:groups": "lb"})
    ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])

    inventory = ansible_inventory(ec2_endpoint)

    def hosts(group: str) -> list[str]:
        return sorted(inventory.get(group, {}).get("hosts", []))

    assert hosts("lb") == ["solar-lb"]
    assert hosts("model_servers") == ["solar-model1", "solar-model2"]
    assert hosts("control") == ["solar-control"]
    assert hosts("monitoring") == ["solar-control"]
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == set(FLEET)
    for name, instance in fleet.items():
        assert plain(hostvars[name]["ansible_host"]) == instance["PrivateIpAddress"]
        assert plain(hostvars[name]["solar_address"]) == instance["PrivateIpAddress"]

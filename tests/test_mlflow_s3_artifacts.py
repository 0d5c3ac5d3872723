"""MLflow's S3 artifact path, as the `mlflow` role deploys it with an S3 destination.

A real `mlflow server` proxies artifacts (`--serve-artifacts`) to a bucket on moto's S3
server on 127.0.0.1. Only the server holds AWS credentials and the S3 endpoint; the client
has no AWS variables at all, sees `mlflow-artifacts:/` URIs and still uploads and
downloads through the server. The object lands under the configured bucket prefix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from mlflow import MlflowClient
from servers import free_port, moto_server, running

pytestmark = pytest.mark.integration

BUCKET = "solar-mlflow-artifacts"
PREFIX = "mlflow"
# Credentials moto accepts; they exist only in the server's environment and below.
SERVER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto-test-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Stack:
    tracking_uri: str
    s3_endpoint: str


def s3_client(endpoint: str):  # boto3 generates its client types at run time
    """boto3 against moto, with credentials given here and never through the environment."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=SERVER_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SERVER_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=SERVER_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("mlflow-s3")
    with pytest.MonkeyPatch.context() as patch:
        # The client side (this process) has no AWS settings at all; the server gets
        # its own below.
        for name in list(os.environ):
            if name.startswith(("AWS_", "MLFLOW_S3_")) or name == "MLFLOW_TRACKING_URI":
                patch.delenv(name)

        with moto_server() as endpoint:
            s3_client(endpoint).create_bucket(Bucket=BUCKET)

            mlflow_port = free_port()
            url = f"http://127.0.0.1:{mlflow_port}"
            command = [
                sys.executable, "-m", "mlflow", "server",
                "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", f"s3://{BUCKET}/{PREFIX}",
                "--serve-artifacts",
            ]  # fmt: skip
            server_env = {
                **SERVER_CREDENTIALS,
                "MLFLOW_S3_ENDPOINT_URL": endpoint,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
            log = root / "mlflow-server.log"
            with running(command, f"{url}/health", log, timeout=90, env=server_env):
                yield Stack(tracking_uri=url, s3_endpoint=endpoint)


def test_client_has_no_aws_settings(stack: Stack) -> None:
    assert not [name for name in os.environ if name.startswith(("AWS_", "MLFLOW_S3_"))]


def test_artifact_round_trip_through_the_server_lands_in_s3(stack: Stack, tmp_path: Path) -> None:
    payload = b"solar-mlops artifact\n" + os.urandom(256 * 1024)
    local = tmp_path / "upload" / "weights.bin"
    local.parent.mkdir()
    local.write_bytes(payload)

    client = MlflowClient(tracking_uri=stack.tracking_uri)
    experiment_id = client.create_experiment("s3-artifacts")
    run = client.create_run(experiment_id)
    client.log_artifact(run.info.run_id, str(local), artifact_path="model")
    client.set_terminated(run.info.run_id)

    # The client only ever sees the proxied scheme, never the bucket.
    artifact_uri = client.get_run(run.info.run_id).info.artifact_uri
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    assert [item.path for item in client.list_artifacts(run.info.run_id, "model")] == [
        "model/weights.bin"
    ]

    downloaded = client.download_artifacts(
        run.info.run_id, "model/weights.bin", dst_path=str(tmp_path / "download")
    )
    assert Path(downloaded).read_bytes() == payload

    # The server put the object into the bucket, under the configured prefix.
    s3 = s3_client(stack.s3_endpoint)
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
    ]
    expected = f"{PREFIX}/{experiment_id}/{run.info.run_id}/artifacts/model/weights.bin"
    assert keys == [expected]
    assert s3.get_object(Bucket=BUCKET, Key=expected)["Body"].read() == payload

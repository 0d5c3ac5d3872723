"""The service as deployed: real gunicorn, two uvicorn workers, a real MLflow server."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import FAST
from servers import gunicorn_server, mlflow_server, venv_bin

from solar_mlops.features import FeatureBuilder
from solar_mlops.pipeline import register_candidate
from solar_mlops.registry import Registry
from solar_mlops.training import Prepared, TrainingResult

pytestmark = pytest.mark.integration


def call(url: str, path: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, prepared: Prepared, trained: TrainingResult
) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("gunicorn")
    with mlflow_server(root / "mlflow") as mlflow_url:
        outcome = register_candidate(
            Registry(tracking_uri=mlflow_url), trained, FAST, prepared=prepared
        )
        env = {
            "MLFLOW_TRACKING_URI": mlflow_url,
            "SOLAR_MODEL_CACHE_DIR": str(root / "model-cache"),
            "SOLAR_PREDICTION_STORE_URL": f"sqlite:///{root / 'predictions.db'}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        }
        yield {"root": root, "env": env, "outcome": outcome, "mlflow": mlflow_url}


def test_predictions_match_offline_and_metrics_add_up_across_workers(
    world: dict, prepared: Prepared
) -> None:
    root, env = world["root"], world["env"]
    day = prepared.frame.loc["2013-05-02"][["ghi", "temp_air"]]
    rows = [
        {"time": t.isoformat(), "ghi": float(r.ghi), "temp_air": float(r.temp_air)}
        for t, r in day.iterrows()
    ]
    requests = 120
    with gunicorn_server(root / "run1", env) as url:
        status, body = call(url, "/predict", {"rows": rows})
        assert status == 200 and body["model_version"] == "1"
        offline = world["outcome"].result.model.predict(FeatureBuilder(prepared.site).build(day))
        served = np.array([p["ac_power_w"] for p in body["predictions"]])
        np.testing.assert_array_equal(served, offline)

        # Many connections at once, so both workers take a share.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: call(url, "/predict", {"rows": rows[:4]})[0],
                                     range(requests)))  # fmt: skip
        assert statuses == [200] * requests
        ok = 'solar_http_requests_total{endpoint="/predict",method="POST",status="200"}'
        assert metric(url, ok) == requests + 1
        assert metric(url, "solar_prediction_rows_total") == len(rows) + 4 * requests
        assert metric(url, "solar_predicted_power_watts_count") == len(rows) + 4 * requests
        info = 'solar_model_info{colour="",model_name="solar-power",model_version="1"'
        assert metric(url, info) == 1
    # A graceful stop flushed every prediction to the store.
    with sqlite3.connect(root / "predictions.db") as db:
        (stored,) = db.execute("select count(*) from predictions").fetchone()
    assert stored == len(rows) + 4 * requests


def answer_to_a_body_never_finished(url: str, head: bytes, body: bytes) -> tuple[int, str]:
    """Send ``head`` and part of a body, never the rest: whatever answers, answered
    before the body was read in full."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: solar\r\n" + head + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(world: dict) -> None:
    env = {**world["env"], "SOLAR_MAX_BODY_BYTES": "4096"}
    with gunicorn_server(world["root"] / "limits", env, workers=1) as url:
        json_type = b"Content-Type: application/json\r\n"
        declared = answer_to_a_body_never_finished(
            url, json_type + b"Content-Length: 10000000\r\n", b'{"rows": ['
        )
        assert declared == (
            413, "request body of 10000000 bytes exceeds the limit of 4096 bytes: "
            "send fewer rows per request",
        )  # fmt: skip
        kilobyte = b"400\r\n" + b" " * 1024 + b"\r\n"  # one chunk of 0x400 bytes
        status, detail = answer_to_a_body_never_finished(
            url, json_type + b"Transfer-Encoding: chunked\r\n", kilobyte * 8
        )
        assert status == 413 and detail.startswith("request body (cut off after ")
        assert "exceeds the limit of 4096 bytes" in detail


def test_restart_with_mlflow_down_serves_the_cached_version(world: dict) -> None:
    root, env = world["root"], world["env"]
    with gunicorn_server(root / "warm", env) as url:
        assert call(url, "/version")[1]["source"] == "registry"
    dead = {**env, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # nothing listens there
    with gunicorn_server(root / "cold", dead) as url:
        _, version = call(url, "/version")
        assert version["source"] == "cache" and version["model_version"] == "1"
        assert version["requested"] == "champion"
        status, body = call(url, "/predict", {"rows": [
            {"time": "2013-06-21T12:00:00-07:00", "ghi": 850.0, "temp_air": 24.0}]})  # fmt: skip
        assert status == 200 and body["predictions"][0]["ac_power_w"] > 0


def test_without_mlflow_or_cache_start_up_fails_with_the_reason(world: dict) -> None:
    root = world["root"] / "nothing"
    env = {**world["env"], "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
           "SOLAR_MODEL_CACHE_DIR": str(root / "empty-cache")}  # fmt: skip
    with pytest.raises(RuntimeError) as failure, gunicorn_server(root, env):
        pass
    assert "holds no cached copy" in str(failure.value)
    assert "Start MLflow, or pre-seed the cache" in str(failure.value)


def test_schemathesis_finds_no_server_error(world: dict) -> None:
    root, env = world["root"], {**world["env"], "SOLAR_API_KEY": "fuzz-key"}
    with gunicorn_server(root / "fuzz", env) as url:
        result = subprocess.run(
            [venv_bin("schemathesis"), "run", f"{url}/openapi.json",
             "--checks", "not_a_server_error",
             "--max-examples", "60", "--workers", "2", "--seed", "7"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

"""The prediction API in one process: contract, validation, limits, auth, parity, docs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from conftest import weather_frame
from fastapi.testclient import TestClient

from solar_mlops.errors import RegistryError
from solar_mlops.features import FEATURE_NAMES, FeatureBuilder
from solar_mlops.pipeline import TrainOutcome
from solar_mlops.service.main import create_app
from solar_mlops.service.schemas import PredictResponse, ValidationErrors
from solar_mlops.service.settings import ServiceSettings
from solar_mlops.service.validation_errors import MAX_ECHO_CHARS, MAX_ERRORS
from solar_mlops.training import Prepared

API_KEY = "test-ground-truth-key"
MAX_ROWS = 60
MAX_BODY = 512 * 1024  # room for a 5,000-row batch


def settings_for(registry_uri: str, root: Path, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "mlflow_tracking_uri": registry_uri,
        "model_cache_dir": root / "cache",
        "prediction_store_url": f"sqlite:///{root / 'predictions.db'}",
        "api_key": API_KEY,
        "max_batch_rows": MAX_ROWS,
        "max_body_bytes": MAX_BODY,
        "git_commit": "0123456789abcdef",
        "colour": "blue",
    }
    return ServiceSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def client(
    embedded_registry: tuple[str, TrainOutcome], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    uri, _ = embedded_registry
    app = create_app(settings_for(uri, tmp_path_factory.mktemp("service")))
    with TestClient(app) as test_client:
        yield test_client


def rows_of(weather: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {"time": t.isoformat(), "ghi": float(r.ghi), "temp_air": float(r.temp_air)}
        for t, r in weather.iterrows()
    ]


def one_row(**changes: object) -> dict[str, object]:
    return {"time": "2013-06-21T12:00:00-07:00", "ghi": 850.0, "temp_air": 24.0, **changes}


def test_predict_answers_with_the_pinned_version(client: TestClient) -> None:
    response = client.post(
        "/predict", json={"rows": [one_row()]}, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "solar-power" and body["model_version"] == "1"
    assert body["request_id"] == "req-42" == response.headers["x-request-id"]
    (prediction,) = body["predictions"]
    assert 500 < prediction["ac_power_w"] < 3500
    assert prediction["features"] is None
    PredictResponse.model_validate_json(response.content)  # what the OpenAPI schema says


def test_fast_and_standard_request_paths_answer_alike(client: TestClient) -> None:
    """A plain JSON body takes the route's fast path; other content types FastAPI's."""
    body = json.dumps({"rows": [one_row(), one_row(time="2013-06-21T12:30:00-07:00")]})
    answers = [
        client.post(
            "/predict", content=body, headers={"content-type": kind, "X-Request-ID": "same"}
        )
        for kind in ("application/json", "application/json; charset=utf-8")
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content


def test_training_and_serving_features_and_predictions_are_identical(
    client: TestClient, prepared: Prepared, embedded_registry: tuple[str, TrainOutcome]
) -> None:
    """A day of holdout weather through the API and through the training code."""
    day = prepared.frame.loc["2013-07-10"][["ghi", "temp_air"]]
    response = client.post(
        "/predict", params={"include_features": "true"}, json={"rows": rows_of(day)}
    )
    assert response.status_code == 200, response.text
    served = pd.DataFrame(
        [p["features"] for p in response.json()["predictions"]], index=day.index
    ).astype("float64")[list(FEATURE_NAMES)]
    offline = FeatureBuilder(prepared.site).build(day)
    pd.testing.assert_frame_equal(served, offline, check_freq=False, check_names=False)
    # Rows whose neighbours were all sent see exactly what training saw.
    inner = day.index[2:-2]
    pd.testing.assert_frame_equal(
        served.loc[inner], prepared.features.loc[inner], check_freq=False, check_names=False
    )
    _, outcome = embedded_registry
    model = outcome.result.model
    expected = model.predict(offline)
    predictions = response.json()["predictions"]
    served_power = np.array([p["ac_power_w"] for p in predictions])
    np.testing.assert_array_equal(served_power, expected)
    # The quantiles too, from the spread boosters the registry kept beside the model.
    served_quantiles = np.array([list(p["quantiles"].values()) for p in predictions])
    np.testing.assert_array_equal(served_quantiles, model.quantiles(offline, expected))


def test_quantiles_bracket_the_forecast_unless_left_out(client: TestClient) -> None:
    rows = rows_of(weather_frame("2013-06-21 05:00", 30))
    predictions = client.post("/predict", json={"rows": rows}).json()["predictions"]
    daytime = [p for p in predictions if p["ac_power_w"] > 0]
    assert len(daytime) > 20
    for p in daytime:
        q = p["quantiles"]
        assert list(q) == ["p10", "p50", "p90"]
        assert 0 <= q["p10"] <= q["p50"] <= q["p90"], p
        assert q["p10"] <= p["ac_power_w"] <= q["p90"], p
    point_only = client.post("/predict", params={"quantiles": "false"}, json={"rows": rows})
    for with_q, without in zip(predictions, point_only.json()["predictions"], strict=True):
        assert without["quantiles"] is None
        assert without["ac_power_w"] == with_q["ac_power_w"]


def test_night_rows_are_zero(client: TestClient) -> None:
    rows = rows_of(weather_frame("2013-06-21 00:00", 8))
    response = client.post("/predict", json={"rows": rows})
    assert [p["ac_power_w"] for p in response.json()["predictions"]] == [0.0] * 8


@pytest.mark.parametrize(
    ("row", "field", "kind"),
    [
        ({"ghi": 850.0, "temp_air": 24.0}, "time", "missing"),
        (one_row(time="2013-06-21T12:00:00"), "time", "timezone_aware"),
        (one_row(time="1913-06-21T12:00:00Z"), "time", "greater_than_equal"),
        (one_row(ghi=-5.0), "ghi", "greater_than_equal"),
        (one_row(ghi=2000.0), "ghi", "less_than_equal"),
        (one_row(temp_air=99.0), "temp_air", "less_than_equal"),
        (one_row(ghi="lots"), "ghi", "float_parsing"),
        (one_row(wind=3.0), "wind", "extra_forbidden"),
    ],
)
def test_bad_rows_get_field_level_422(
    client: TestClient, row: dict[str, object], field: str, kind: str
) -> None:
    response = client.post("/predict", json={"rows": [row]})
    assert response.status_code == 422
    (error,) = ValidationErrors.model_validate_json(response.content).detail
    assert error.loc == ["body", "rows", 0, field] and error.type == kind


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client: TestClient, token: str) -> None:
    body = f'{{"rows": [{{"time": "2013-06-21T12:00:00Z", "ghi": {token}, "temp_air": 20}}]}}'
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "rows", 0, "ghi"] and error["input"] == token


def test_duplicate_timestamps_and_empty_batches_are_refused(client: TestClient) -> None:
    duplicate = client.post("/predict", json={"rows": [one_row(), one_row(ghi=10.0)]})
    assert duplicate.status_code == 422
    assert "rows[1].time repeats" in duplicate.text
    # The model sees whole seconds: two times within one second are the same row.
    close = [one_row(time=f"2013-06-21T12:00:00.{tenths}-07:00") for tenths in (1, 6)]
    same_second = client.post("/predict", json={"rows": close})
    assert same_second.status_code == 422 and "rows[1].time repeats" in same_second.text
    empty = client.post("/predict", json={"rows": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["type"] == "too_short"


def test_a_large_batch_gets_a_small_422_that_names_the_row(client: TestClient) -> None:
    rows = rows_of(weather_frame("2013-06-21", 5000))
    rows[4321]["time"] = rows[4320]["time"]
    response = client.post("/predict", json={"rows": rows})
    assert response.status_code == 422
    assert len(response.content) < 1024  # the 325 KB request used to come back whole
    body = ValidationErrors.model_validate_json(response.content)
    (error,) = body.detail
    assert "rows[4321].time repeats an earlier timestamp" in error.msg
    sent = json.dumps({"rows": rows}, separators=(",", ":"))
    assert error.input == f"{sent[:MAX_ECHO_CHARS]}… [cut: {len(sent)} characters of JSON in all]"
    assert body.errors_omitted == 0


def test_many_errors_are_listed_up_to_a_bound_with_a_count(client: TestClient) -> None:
    rows = [{**row, "ghi": -1.0} for row in rows_of(weather_frame("2013-06-21", 50))]
    rows[0]["x" * 5000] = 1  # a field name is input too
    response = client.post("/predict", json={"rows": rows})
    assert response.status_code == 422 and len(response.content) < 8 * 1024
    body = ValidationErrors.model_validate_json(response.content)
    assert len(body.detail) == MAX_ERRORS and body.errors_omitted == 51 - MAX_ERRORS
    unknown = body.detail[1]
    assert unknown.type == "extra_forbidden" and len(unknown.loc[-1]) < MAX_ECHO_CHARS + 50
    assert [e.loc for e in body.detail[2:]] == [
        ["body", "rows", i, "ghi"] for i in range(1, MAX_ERRORS - 1)
    ]


def test_limits_answer_413_naming_the_limit_and_what_was_sent(client: TestClient) -> None:
    too_many = rows_of(weather_frame("2013-06-21", MAX_ROWS + 1))
    response = client.post("/predict", json={"rows": too_many})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"batch of {MAX_ROWS + 1} rows exceeds the limit of {MAX_ROWS} rows: "
        f"send at most {MAX_ROWS} rows per request"
    )
    padding = json.dumps({"rows": [one_row()], "pad": "x" * MAX_BODY}).encode()
    headers = {"content-type": "application/json"}
    declared = client.post("/predict", content=padding, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["detail"] == (
        f"request body of {len(padding)} bytes exceeds the limit of {MAX_BODY} bytes: "
        "send fewer rows per request"
    )
    # Without a Content-Length (chunked), the body is cut off as it is read.
    streamed = client.post("/predict", content=iter([padding]), headers=headers)
    assert streamed.status_code == 413
    assert re.fullmatch(
        rf"request body \(cut off after \d+ bytes\) exceeds the limit of {MAX_BODY} bytes: "
        "send fewer rows per request",
        streamed.json()["detail"],
    )


def test_probes_and_version(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready").json()
    assert ready == {"status": "ready", "model_name": "solar-power", "model_version": "1"}
    version = client.get("/version").json()
    assert version["requested"] == "champion" and version["source"] == "registry"
    assert version["service_git_commit"] == "0123456789abcdef"
    assert version["colour"] == "blue" and len(version["feature_schema_hash"]) == 16
    assert version["run_id"]
    assert version["quantiles"] == [0.1, 0.5, 0.9]


def test_actuals_need_the_key_and_past_times(client: TestClient) -> None:
    rows = {"rows": [{"time": "2013-06-21T12:00:00-07:00", "ac_power_w": 2100.0}]}
    assert client.post("/actuals", json=rows).status_code == 401
    wrong = client.post("/actuals", json=rows, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401
    accepted = client.post("/actuals", json=rows, headers={"X-API-Key": API_KEY})
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 1}
    future = {"rows": [{"time": "2099-01-01T00:00:00Z", "ac_power_w": 1.0}]}
    refused = client.post("/actuals", json=future, headers={"X-API-Key": API_KEY})
    assert refused.status_code == 422 and "future" in refused.text
    (error,) = ValidationErrors.model_validate_json(refused.content).detail
    assert error.loc == ["body", "rows", 0, "time"] and error.type == "datetime_past"


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    def count(status: str) -> float:
        text = client.get("/metrics").text
        line = f'solar_http_requests_total{{endpoint="/predict",method="POST",status="{status}"}}'
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    before_ok, before_bad = count("200"), count("422")
    client.post("/predict", json={"rows": [one_row()]})
    client.post("/predict", json={"rows": [one_row(ghi=-1)]})
    assert (count("200"), count("422")) == (before_ok + 1, before_bad + 1)
    assert 'solar_model_info{colour="blue",model_name="solar-power"' in client.get("/metrics").text


def test_explicit_version_and_unknown_version(
    embedded_registry: tuple[str, TrainOutcome], tmp_path: Path
) -> None:
    uri, _ = embedded_registry
    app = create_app(settings_for(uri, tmp_path, model_version="1"))
    with TestClient(app) as pinned:
        assert pinned.get("/version").json()["requested"] == "1"
    with pytest.raises(RegistryError, match="has no version '7'"):
        create_app(settings_for(uri, tmp_path, model_version="7"))
    with pytest.raises(RegistryError, match="has no alias 'staging'"):
        create_app(settings_for(uri, tmp_path, model_version="staging"))


def test_ground_truth_intake_off_without_a_key(
    embedded_registry: tuple[str, TrainOutcome], tmp_path: Path
) -> None:
    uri, _ = embedded_registry
    with TestClient(create_app(settings_for(uri, tmp_path, api_key=None))) as keyless:
        response = keyless.post("/actuals", json={"rows": [{"time": "2013-01-01T00:00:00Z",
                                                             "ac_power_w": 1.0}]})  # fmt: skip
        assert response.status_code == 403 and "SOLAR_API_KEY_FILE" in response.text


def test_api_key_file_wins(embedded_registry: tuple[str, TrainOutcome], tmp_path: Path) -> None:
    uri, _ = embedded_registry
    secret = tmp_path / "key"
    secret.write_text("from-the-file\n")
    settings = settings_for(uri, tmp_path, api_key_file=secret)
    assert settings.ground_truth_key == "from-the-file"


class _Assets(HTMLParser):
    """The URLs a docs page loads: scripts, stylesheets and icons, ReDoc's schema."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        url = {"script": "src", "link": "href", "redoc": "spec-url"}.get(tag)
        if url and attributes.get(url):
            self.urls.append(str(attributes[url]))


EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_the_service(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200 and "://" not in html.text  # no absolute URL at all
    parser = _Assets()
    parser.feed(html.text)
    urls = parser.urls + re.findall(r"url: '([^']+)'", html.text)  # Swagger UI's schema
    assert "/openapi.json" in urls and len(urls) >= 3
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url
        response = client.get(url)
        assert response.status_code == 200, url
        kind = response.headers["content-type"].split(";")[0]
        assert kind == EXPECTED_TYPES[Path(parts.path).suffix], url
        assert len(response.content) > 1000, url
    # One series for every asset, whatever name is asked for.
    assert client.get("/docs/assets/no-such-file.js").status_code == 404
    metrics = client.get("/metrics").text
    assert 'endpoint="/docs/assets/{name}",method="GET",status="200"' in metrics
    assert 'endpoint="/docs/assets/{name}",method="GET",status="404"' in metrics
    assert "swagger-ui" not in metrics and "no-such-file" not in metrics

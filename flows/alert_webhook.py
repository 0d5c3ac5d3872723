"""Alertmanager's receiver for drift alerts: one drift incident starts one ``retrain`` run.

Alertmanager sends the alerts labelled ``category: drift`` (ModelDataDrift,
ModelPerformanceDrift) here, as webhook notifications with a bearer token. The incident
is monitor_drift's last drift announcement, kept in MLflow
(``monitoring.last_announcement``): its event and its window. A notification starts
``retrain/retrain`` on that window unless a retrain run for it exists already, whoever
started it:

- the monitor's own ``solar.drift.detected`` event usually has, minutes before the
  alert's ``for:`` and Alertmanager's ``group_wait`` let a notification out: then the
  notification finds that run and starts nothing;
- Alertmanager's repeats, a second drift alert joining the group and a resend after a
  restart find the run this receiver started (and the idempotency key, the event id,
  settles two notifications arriving at once).

So the alert path is a second way in, not a second retraining: with the event trigger
off (or its event lost), the alerts alone start one retraining per incident. A drift
that lasts past the monitor's cool-down is announced again: a new incident.

Run: ``uvicorn flows.alert_webhook:app`` with ``SOLAR_ALERT_WEBHOOK_TOKEN_FILE`` (or
``SOLAR_ALERT_WEBHOOK_TOKEN``), ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` set
(docs/alerting.md).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from mlflow.exceptions import MlflowException
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.common import DRIFT_EVENT
from flows.settings import FlowSettings
from solar_mlops import monitoring
from solar_mlops.registry import Registry

# Prefect's logging (set up when it is imported) keeps the root at WARNING: each
# decision, a started run included, goes to the journal.
logger = logging.getLogger("solar_mlops.alert_webhook")
logger.setLevel(logging.INFO)

RETRAIN = "retrain/retrain"
# Retrain runs searched for one of the incident: more than a year of weekly incidents.
SEARCH_DEPTH = 100


class WebhookSettings(BaseSettings):
    """The bearer token Alertmanager sends (required: this endpoint starts trainings):
    ``SOLAR_ALERT_WEBHOOK_TOKEN_FILE``, a file holding it (the prefect role mounts one,
    so the token is in no container's environment), or else ``SOLAR_ALERT_WEBHOOK_TOKEN``
    (local runs and tests). The file wins, as the service's API key file does."""

    model_config = SettingsConfigDict(env_prefix="SOLAR_ALERT_WEBHOOK_", frozen=True)

    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _token_given(self) -> WebhookSettings:
        if self.token is None and self.token_file is None:
            raise ValueError("set SOLAR_ALERT_WEBHOOK_TOKEN_FILE (or SOLAR_ALERT_WEBHOOK_TOKEN)")
        return self

    def expected_token(self) -> str:
        """The token, from the file when there is one; may be empty (then none matches)."""
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token.get_secret_value() if self.token else ""


class Alert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]


class Notification(BaseModel):
    """Alertmanager's webhook body (version 4): the fields this receiver reads."""

    status: Literal["firing", "resolved"]
    alerts: list[Alert]


class Answer(BaseModel):
    action: Literal["started", "exists", "ignored"]
    detail: str
    flow_run_id: str | None = None
    event_id: str | None = None


def authorised(
    credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))
    ],
) -> None:
    expected = WebhookSettings().expected_token().encode()
    given = credentials.credentials.encode() if credentials else b""
    # An empty token (an empty file) would match a request without one.
    if not expected or not secrets.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required: Alertmanager's webhook_configs http_config.authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _same_time(value: Any, expected: pd.Timestamp) -> bool:
    try:
        return pd.Timestamp(value) == expected
    except (TypeError, ValueError):
        return False


def run_for(incident: monitoring.Announcement) -> FlowRun | None:
    """The retrain run whose window is the incident's, if there is one."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(RETRAIN)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=SEARCH_DEPTH,
        )
    for run in runs:
        parameters = run.parameters
        if _same_time(parameters.get("window_start"), incident.window_start) and _same_time(
            parameters.get("window_end"), incident.window_end
        ):
            return run
    return None


def start_retrain(incident: monitoring.Announcement) -> FlowRun:
    run = run_deployment(
        RETRAIN,
        parameters={
            "window_start": incident.window_start.isoformat(),
            "window_end": incident.window_end.isoformat(),
        },
        # Prefect returns the run already created with this key: two notifications at
        # once start one run.
        idempotency_key=f"{DRIFT_EVENT} {incident.event_id}",
        tags=["alertmanager"],
        timeout=0,
        as_subflow=False,
    )
    assert isinstance(run, FlowRun)  # a coroutine only when called from async code
    return run


def refusal(code: int, detail: str) -> HTTPException:
    """An answer Alertmanager only counts as failed: the reason goes to the journal."""
    logger.warning("%s", detail)
    return HTTPException(code, detail)


app = FastAPI(title="solar-mlops alert webhook", version="1")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/alerts", dependencies=[Depends(authorised)])
def receive(notification: Notification) -> Answer:
    """Start the retraining of the incident behind the firing drift alerts, once."""
    drifting = [
        a
        for a in notification.alerts
        if a.status == "firing" and a.labels.get("category") == "drift"
    ]
    if not drifting:
        return Answer(action="ignored", detail="no firing alert labelled category=drift")
    names = ", ".join(sorted({a.labels.get("alertname", "?") for a in drifting}))
    settings = FlowSettings()
    try:
        settings.require("mlflow_tracking_uri")
    except ValueError as exc:  # else MLflow would open a SQLite file in the working folder
        raise refusal(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    try:
        incident = monitoring.last_announcement(
            Registry(settings.model_name, tracking_uri=settings.mlflow_tracking_uri)
        )
    except (MlflowException, OSError) as exc:  # Alertmanager retries a 5xx
        raise refusal(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"could not read the drift announcements from MLflow at "
            f"{settings.mlflow_tracking_uri}: {exc}",
        ) from exc
    if incident is None:
        raise refusal(
            status.HTTP_409_CONFLICT,
            f"{names} fire, but MLflow ({settings.mlflow_tracking_uri}, experiment "
            f"{monitoring.EXPERIMENT}) holds no drift announcement, so there is no window to "
            "retrain on: look at the last monitor_drift flow run",
        )
    try:
        existing = run_for(incident)
        if existing is not None:
            detail = f"retrain run {existing.name} already handles event {incident.event_id}"
            logger.info("%s (%s)", detail, names)
            return Answer(
                action="exists",
                detail=detail,
                flow_run_id=str(existing.id),
                event_id=incident.event_id,
            )
        run = start_retrain(incident)
    except ObjectNotFound as exc:
        raise refusal(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Prefect has no deployment {RETRAIN}: register flows/prefect.yaml "
            "(the prefect role does)",
        ) from exc
    except httpx.HTTPError as exc:  # Prefect down or refusing: Alertmanager retries a 5xx
        raise refusal(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"could not reach Prefect: {exc}"
        ) from exc
    detail = (
        f"started retrain run {run.name} for event {incident.event_id} "
        f"({incident.window_start:%Y-%m-%d}..{incident.window_end:%Y-%m-%d}) on {names}"
    )
    logger.info("%s", detail)
    return Answer(
        action="started", detail=detail, flow_run_id=str(run.id), event_id=incident.event_id
    )

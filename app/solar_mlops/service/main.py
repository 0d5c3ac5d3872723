"""The FastAPI application. ``create_app()`` loads the model before it returns, so under
gunicorn's ``preload_app`` the model is loaded once, before any worker serves."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json

from solar_mlops.features import FEATURE_NAMES
from solar_mlops.intervals import Intervals
from solar_mlops.prediction_store import connect, upsert_actuals
from solar_mlops.service import metrics
from solar_mlops.service.api_docs import add_api_docs
from solar_mlops.service.batcher import PredictionBatcher, Series
from solar_mlops.service.middleware import BodyLimit, RequestContext
from solar_mlops.service.model_store import ServedModel, load_served_model
from solar_mlops.service.prediction_log import PredictionLog
from solar_mlops.service.routing import JsonBodyRoute
from solar_mlops.service.schemas import (
    ActualsRequest,
    ActualsResponse,
    Liveness,
    PredictRequest,
    PredictResponse,
    Readiness,
    ValidationErrors,
    VersionInfo,
)
from solar_mlops.service.settings import ServiceSettings
from solar_mlops.service.validation_errors import validation_error

log = logging.getLogger(__name__)
# A summer noon (2013-06-21 18:00 UTC) for the warm-up prediction of each worker.
_WARM_UP_TIME = 1371837600


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    served = load_served_model(
        settings.model_name, settings.model_version, settings.mlflow_tracking_uri,
        settings.model_cache_dir, settings.sun_cache_rows,
    )  # fmt: skip
    loaded = served.loaded
    log.info("serving %s v%s (%s)", loaded.name, loaded.version, served.source)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Per worker, after the fork: the writer thread, and one prediction so that
        # LightGBM's thread pool exists before the first request.
        prediction_log = PredictionLog(
            connect(settings.prediction_store_url),
            settings.prediction_queue_rows,
            settings.prediction_flush_rows,
            settings.prediction_flush_s,
        )
        prediction_log.start()
        app.state.prediction_log = prediction_log
        app.state.batcher = PredictionBatcher(served.features, loaded.model)
        warm = served.features.compute(
            np.array([_WARM_UP_TIME]), np.array([800.0]), np.array([25.0])
        )
        loaded.model.predict_array(warm)
        metrics.MODEL_INFO.labels(
            loaded.name, loaded.version, loaded.run_id, served.source, settings.colour
        ).set(1)
        yield
        prediction_log.close()
        prediction_log.engine.dispose()

    app = FastAPI(
        title="solar-mlops prediction service",
        summary="AC power forecasts for PVDAQ system 50 from timestamp and weather",
        version=settings.git_commit[:12],
        lifespan=lifespan,
        # api_docs.py serves the schema and both pages, with no CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # The service's metrics are Prometheus' (metrics.py). FastAPI's OpenTelemetry
        # hooks, unconfigured, would still look up the providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.served = served
    # Bodies over the limit get a 413 before they are read in full.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)
    app.exception_handler(RequestValidationError)(validation_error)
    app.include_router(router)
    add_api_docs(app)
    return app


# Dependencies are coroutines: plain functions would each cost a thread-pool hop.
async def _served(request: Request) -> ServedModel:
    return request.app.state.served


async def _settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


Served = Annotated[ServedModel, Depends(_served)]
Settings = Annotated[ServiceSettings, Depends(_settings)]


router = APIRouter()
# A 422 as validation_errors.py words it, in the OpenAPI contract.
_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrors, "description": "invalid request"}
}


async def predict(
    body: PredictRequest,
    request: Request,
    include_features: Annotated[bool, Query(description="return derived features")] = False,
    quantiles: Annotated[
        bool, Query(description="return the forecast quantiles (P10, P50, P90)")
    ] = True,
) -> Response:
    """Forecast AC power for a batch of timestamps with weather."""
    # From the app's state: the route's fast path solves no dependencies.
    state = request.app.state
    settings: ServiceSettings = state.settings
    loaded = state.served.loaded
    rows = body.rows
    if len(rows) > settings.max_batch_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"batch of {len(rows)} rows exceeds the limit of {settings.max_batch_rows} rows: "
            f"send at most {settings.max_batch_rows} rows per request",
        )
    series = Series(
        epoch_s=body.epoch_s,
        ghi=np.fromiter((r.ghi for r in rows), np.float64, len(rows)),
        temp_air=np.fromiter((r.temp_air for r in rows), np.float64, len(rows)),
        quantiles=quantiles,
    )
    forecast = await state.batcher.predict(series)
    values, power = forecast.features, forecast.power_w
    bands = _quantile_dicts(loaded.model.intervals, forecast.quantiles_w, len(rows))

    request_id = request.state.request_id
    served_at = datetime.now(UTC)
    watts = power.tolist()
    state.prediction_log.submit(
        [
            {
                "request_id": request_id,
                "time": r.time,
                "ghi": r.ghi,
                "temp_air": r.temp_air,
                "predicted_w": w,
                "model_name": loaded.name,
                "model_version": loaded.version,
                "colour": settings.colour,
                "served_at": served_at,
            }
            for r, w in zip(rows, watts, strict=True)
        ]
    )
    metrics.PREDICTION_ROWS.inc(len(rows))
    metrics.observe_many(metrics.PREDICTED_POWER, power)
    # A PredictResponse, serialised from plain values by pydantic's own serialiser (the
    # same bytes): building the models first costs ten times as much, 10 ms for 1000 rows.
    content = to_json(
        {
            "request_id": request_id,
            "model_name": loaded.name,
            "model_version": loaded.version,
            "predictions": [
                {
                    "time": r.time,
                    "ac_power_w": w,
                    "quantiles": bands[i],
                    "features": _as_dict(values[i]) if include_features else None,
                }
                for i, (r, w) in enumerate(zip(rows, watts, strict=True))
            ],
        }
    )
    return Response(content, media_type="application/json")


router.add_api_route(
    "/predict",
    predict,
    methods=["POST"],
    response_model=PredictResponse,
    responses={
        **_REFUSED,
        413: {
            "description": "body over the byte limit, or batch over the row limit; "
            "`detail` names the limit and what was sent"
        },
    },
    route_class_override=JsonBodyRoute,
)


@router.post(
    "/actuals",
    response_model=ActualsResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_REFUSED,
        401: {"description": "missing or wrong API key"},
        403: {"description": "ground-truth intake disabled (no key configured)"},
        503: {"description": "prediction store unavailable; nothing stored, retry"},
    },
)
def actuals(
    body: ActualsRequest,
    request: Request,
    settings: Settings,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ActualsResponse:
    """Accept measured AC power for past timestamps (late ground truth)."""
    expected = settings.ground_truth_key
    if expected is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "ground-truth intake is disabled on this instance: set SOLAR_API_KEY_FILE "
            "or SOLAR_API_KEY",
        )
    if x_api_key is None or not hmac.compare_digest(x_api_key, expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong X-API-Key")
    engine = request.app.state.prediction_log.engine
    try:
        accepted = upsert_actuals(engine, [(r.time, r.ac_power_w) for r in body.rows])
    except Exception as exc:  # the store is down: say so, the caller retries
        log.warning("actuals: store unavailable: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "prediction store unavailable; nothing was stored, retry later",
        ) from exc
    return ActualsResponse(accepted=accepted)


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    """Liveness: the process answers."""
    return Liveness()


@router.get("/health/ready", response_model=Readiness)
async def ready(served: Served) -> Readiness:
    """Readiness: the model is loaded (it always is once the worker serves)."""
    return Readiness(model_name=served.loaded.name, model_version=served.loaded.version)


@router.get("/version", response_model=VersionInfo)
async def version(served: Served, settings: Settings) -> VersionInfo:
    """Exactly which model answers, and from where it was loaded."""
    loaded = served.loaded
    return VersionInfo(
        model_name=loaded.name,
        model_version=loaded.version,
        requested=served.requested,
        run_id=loaded.run_id,
        feature_schema_hash=str(loaded.metadata.get("feature_schema_hash", "")),
        model_git_commit=str(loaded.metadata.get("git_commit", "")),
        service_git_commit=settings.git_commit,
        quantiles=list(loaded.model.intervals.levels) if loaded.model.intervals else [],
        source=served.source,
        colour=settings.colour,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def _quantile_dicts(
    intervals: Intervals | None, quantiles_w: np.ndarray | None, rows: int
) -> list[dict[str, float] | None]:
    if intervals is None or quantiles_w is None:
        return [None] * rows
    names = intervals.names
    return [dict(zip(names, row, strict=True)) for row in quantiles_w.tolist()]


def _as_dict(row: np.ndarray) -> dict[str, float | None]:
    return {
        name: (None if np.isnan(value) else float(value))
        for name, value in zip(FEATURE_NAMES, row, strict=True)
    }

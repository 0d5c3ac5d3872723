"""The API's documentation, served with no network beyond the service: the OpenAPI
schema, Swagger UI at ``/docs``, ReDoc at ``/redoc``.

FastAPI's own pages load their scripts and stylesheet from a CDN, which the lab and an
air-gapped host cannot reach. This is FastAPI's recipe for self-hosted docs assets: the
same pages, pointing at copies served here. The copies (swagger-ui-dist's bundle and
stylesheet, ReDoc's standalone bundle, FastAPI's favicon) come from the pinned
``fastapi-offline`` package, installed like any dependency; nothing is vendored.

Each is an ``APIRoute`` (FastAPI's ``app.mount`` and ``add_route`` would not be): the
metrics middleware labels requests with the route's template, so ``/metrics`` shows
``/docs``, ``/redoc``, ``/openapi.json`` and ``/docs/assets/{name}``, not "unmatched".
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"
_ASSETS = StaticFiles(packages=[("fastapi_offline", "static")])


def add_api_docs(app: FastAPI) -> None:
    """Add the four routes to ``app``, built with ``openapi_url=None, docs_url=None,
    redoc_url=None`` so that FastAPI adds none of its own."""

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,  # a CDN too; ReDoc falls back to the system's fonts
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def asset(name: str, request: Request) -> Response:
        # StaticFiles' lookup: confined to the package's folder, ETag and 304, a 404
        # for any other name.
        return await _ASSETS.get_response(name, request.scope)

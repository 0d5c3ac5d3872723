"""Pure ASGI middleware: request ids and per-request metrics."""

from __future__ import annotations

import functools
import re
import secrets
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from solar_mlops.service import metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Tag each request with an id (the caller's ``X-Request-ID`` if sane, else a new
    one), and count and time it by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        counted = False

        def count() -> None:
            nonlocal counted
            counted = True
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            requests, latency = _series(endpoint, scope["method"], status)
            requests.inc()
            latency.observe(time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last byte leaves: a client holding its answer
                # then always finds it in /metrics.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not counted:
                count()


@functools.cache
def _series(endpoint: str, method: str, status: int) -> tuple[Counter, Histogram]:
    """The metric children of one kind of request, looked up once."""
    return metrics.REQUESTS.labels(endpoint, method, str(status)), metrics.LATENCY.labels(endpoint)

"""Pure ASGI middleware: request ids, per-request metrics, the request body limit."""

from __future__ import annotations

import functools
import re
import secrets
import time

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
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


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with a 413 that names the limit and
    what was sent: as the endpoint starts reading it if its Content-Length is too
    large (not a byte is read), else as soon as the bytes read pass the limit.

    FastAPI's own ``max_body_size`` (Starlette's limiter) answers a bare "Content Too
    Large", and replaces any answer to a body whose Content-Length is over the limit.
    An ``HTTPException`` is raised from ``receive``: FastAPI's body parsing passes it
    on as it is, and its handler answers with the detail, counted under the route.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise _too_large(f"request body of {declared} bytes", limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    sent = f"request body (cut off after {received} bytes)"
                    raise _too_large(sent, limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _too_large(sent: str, limit: int) -> HTTPException:
    return HTTPException(
        413, f"{sent} exceeds the limit of {limit} bytes: send fewer rows per request"
    )

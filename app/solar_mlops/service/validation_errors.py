"""The service's 422: FastAPI's field-level errors, bounded in size whatever was sent.

pydantic echoes each error's ``input``: for a check on the whole request (repeated
timestamps) that is the whole request, 325 KB for a 5,000-row batch. Here each echoed
value is cut to a short prefix of its JSON, and only the first errors are listed.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import to_json

MAX_ERRORS = 20
MAX_ECHO_CHARS = 200


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """The first ``MAX_ERRORS`` errors, each echoing at most ``MAX_ECHO_CHARS``
    characters of what was sent, and how many more errors there were."""
    errors = exc.errors()
    shown = [_bounded_error(error) for error in errors[:MAX_ERRORS]]
    return JSONResponse(
        {"detail": shown, "errors_omitted": len(errors) - len(shown)},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    bounded = {**error, "loc": [_bounded(part) for part in error["loc"]]}
    if "input" in error:
        bounded["input"] = _bounded(error["input"])
    if "ctx" in error:  # an object in FastAPI's schema: each value bounded
        bounded["ctx"] = {key: _bounded(value) for key, value in error["ctx"].items()}
    return bounded


def _bounded(value: object) -> object:
    """``value`` as JSON-safe data if its JSON is short, else a prefix of that JSON
    with a marker. A NaN or infinity the client sent comes back as the string
    ``"NaN"``/``"Infinity"``; anything else JSON cannot hold, as its ``str``."""
    text = to_json(value, inf_nan_mode="strings", fallback=str).decode()
    if len(text) <= MAX_ECHO_CHARS:
        return json.loads(text)
    return f"{text[:MAX_ECHO_CHARS]}… [cut: {len(text)} characters of JSON in all]"

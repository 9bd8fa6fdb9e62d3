"""The one place that turns errors into OpenAI's envelope `{"error": {message, type, param, code}}`.

Clients depend on it: the legacy CLI raises an opaque "Invalid response object" on any error body
without `error`, so the framework's own 404/405/422 answers go through here too."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.errors import InvalidRequest, RateLimited, TuneforgeError

log = logging.getLogger(__name__)


def envelope(
    status: int, message: str, *, type: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


async def _typed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TuneforgeError)
    headers = {}
    if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=headers)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error = invalid_value(exc.errors())
    return JSONResponse(error.envelope(), status_code=error.status)


def invalid_value(errors: Sequence[Any]) -> InvalidRequest:
    """pydantic's errors as the 400 naming the first bad param (batch lines are parsed this way too)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if _is_field(part)]
    param = ".".join(loc) or None
    message = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg"))
    return InvalidRequest(message, param=param, code="invalid_value")


def _is_field(part: object) -> bool:
    """Drop the location's framework parts (body/query) and pydantic's union-member tags (`int`,
    `constrained-int`, `literal['auto']`), keeping the names a client sent."""
    if isinstance(part, int):
        return True
    text = str(part)
    return text.isidentifier() and text not in _NOT_FIELDS


_NOT_FIELDS = {"body", "query", "path", "form", "int", "float", "str", "bool", "list", "dict", "none"}
_NOT_FIELDS |= {
    "string_check",
    "text_similarity",
    "python",
    "score_model",
    "label_model",
    "multi",
}  # grader tags


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return envelope(
            404, "Unknown request URL or no such object.", type="invalid_request_error", code="not_found"
        )
    return envelope(exc.status_code, str(exc.detail), type="invalid_request_error")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return envelope(500, "The server had an error while processing your request.", type="server_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TuneforgeError, _typed)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)

"""Request-size limits, enforced before a body is read: uploads up to `max_upload_bytes`, any other
request up to `max_request_bytes`. Over the limit is a 413 in OpenAI's envelope."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tuneforge.settings import Settings

_MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around an upload


class BodySizeLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        limit = self._limit(headers.get("content-type", ""))
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        await self.app(scope, receive, send)

    def _limit(self, content_type: str) -> int:
        if content_type.startswith("multipart/form-data"):
            return self.settings.max_upload_bytes + _MULTIPART_OVERHEAD
        return self.settings.max_request_bytes


async def _too_large(send: Send, limit: int) -> None:
    error: dict[str, Any] = {
        "message": f"Request body exceeds the {limit}-byte limit",
        "type": "invalid_request_error",
        "param": None,
        "code": "payload_too_large",
    }
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})

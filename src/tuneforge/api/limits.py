"""Request-size limits: uploads up to `max_upload_bytes`, any other request up to `max_request_bytes`.
A declared Content-Length over the limit is refused before the body is read; a chunked body is counted
as it streams and refused the moment it passes the limit. Over the limit is a 413 in OpenAI's envelope."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        await _Counted(self.app, limit).run(scope, receive, send)

    def _limit(self, content_type: str) -> int:
        if content_type.startswith("multipart/form-data"):
            return self.settings.max_upload_bytes + _MULTIPART_OVERHEAD
        return self.settings.max_request_bytes


class _Counted:
    """One request whose body bytes are counted as the app reads them. Past the limit the client gets the
    413 at once and the app sees a disconnect (so it stops reading and spooling); whatever the app answers
    after that is dropped, as the response has already gone out."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.started = False  # the app has begun its own response: too late for a 413
        self.refused = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or self.refused:
                return message
            self.received += len(message.get("body", b""))
            if self.received <= self.limit:
                return message
            self.refused = True
            if not self.started:
                await _too_large(send, self.limit)
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            if self.refused and not self.started:
                return
            self.started = self.started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not self.refused:
                raise  # the app's failure reading a body we cut short is no news: the 413 has gone out


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

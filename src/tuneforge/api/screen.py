"""ASGI middleware: a NUL byte in a request's path or query string is refused with a 400 naming where it
was, before routing. (The store refuses NUL in any value it is given, body fields included; this only
names the URL's param better than a column name can.)"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tuneforge.errors import InvalidRequest


class NulByteScreen:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _nul_in_url(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(refusal.envelope(), status_code=refusal.status)(scope, receive, send)


def _nul_in_url(scope: Scope) -> InvalidRequest | None:
    if "\x00" in scope["path"]:
        return InvalidRequest("The URL path must not contain a NUL byte (%00).")
    for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return InvalidRequest(f"'{name}' must not contain a NUL byte (%00).", param=name)
    return None

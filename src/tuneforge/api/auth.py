"""Who is calling: the organisation of the Bearer key on every /v1 request (401 in OpenAI's envelope
otherwise), with a per-key requests-per-minute limit. Keys are looked up on each request, so a revoked
key stops working on the next one."""

from __future__ import annotations

import math
import threading
import time
from typing import Annotated

from fastapi import Depends, Header, Request

from tuneforge.errors import RateLimited, Unauthorized
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store
from tuneforge.store.db import Database


class RateLimiter:
    """Fixed one-minute windows per key, in this process (each server process counts its own)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(key_id, (now, 0))
            if now - start >= 60:
                start, count = now, 0
            if count >= self.per_minute:
                retry = max(1, math.ceil(60 - (now - start)))
                raise RateLimited(
                    f"Rate limit reached: {self.per_minute} requests per minute for this key. "
                    f"Try again in {retry} s.",
                    retry_after_s=retry,
                )
            self._windows[key_id] = (start, count + 1)


def get_owner(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    settings: Settings = request.app.state.settings
    if not settings.auth:
        return settings.organization
    secret = _bearer_secret(authorization)
    database: Database = request.app.state.database
    with database.session() as session:
        row = key_store.authenticate(session, secret)
        if row is None:
            raise Unauthorized(
                f"Incorrect API key provided: ...{secret[-4:]}. "
                "Create one with `tuneforge keys create --org ORG`."
            )
        key_id, owner = row.id, row.owner
    request.state.api_key_id = key_id  # a streamed response checks it again as it goes (api/revocation.py)
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(key_id)
    return owner


def _bearer_secret(authorization: str | None) -> str:
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(the openai SDK does this for api_key).",
            code="missing_api_key",
        )
    return secret.strip()


OwnerDep = Annotated[str, Depends(get_owner)]

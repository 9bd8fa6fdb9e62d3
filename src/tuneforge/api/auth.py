"""Who is calling: the organisation of the Bearer key on every /v1 request (401 in OpenAI's envelope
otherwise, before the body is read), with a per-key requests-per-minute limit. Keys are looked up on each
request, so a revoked key stops working on the next one."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from limits import RateLimitItemPerMinute
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tuneforge.errors import LimitsUnavailable, MissingExtra, RateLimited, Unauthorized
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store
from tuneforge.store.db import Database


class RateLimiter:
    """Requests per minute per key in fixed one-minute windows (each starts at a key's first request),
    counted by the `limits` library: in this process, or in Redis, where every API replica counts
    together (`redis_url`)."""

    def __init__(
        self, per_minute: int, *, redis_url: str | None = None, key_prefix: str = "tuneforge"
    ) -> None:
        self.per_minute = per_minute
        self.shared = redis_url is not None
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = FixedWindowRateLimiter(_storage(redis_url, f"{key_prefix}:rpm"))

    def check(self, key_id: str) -> None:
        """Count one request of `key_id`; RateLimited over the limit. Blocking I/O when shared."""
        try:
            if self._limiter.hit(self._item, key_id):
                return
            reset = self._limiter.get_window_stats(self._item, key_id).reset_time
        except StorageError as exc:
            raise LimitsUnavailable("The rate limiter's store is not answering; try again shortly.") from exc
        retry = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"Rate limit reached: {self.per_minute} requests per minute for this key. "
            f"Try again in {retry} s.",
            retry_after_s=retry,
        )


def _storage(redis_url: str | None, key_prefix: str) -> Storage:
    if redis_url is None:
        return MemoryStorage()
    try:
        return RedisStorage(redis_url, key_prefix=key_prefix, wrap_exceptions=True)
    except ConfigurationError as exc:  # the redis client is not installed
        raise MissingExtra("Limits shared in Redis (TUNEFORGE_REDIS_URL)", "redis") from exc


@dataclass(frozen=True)
class Caller:
    key_id: str
    owner: str


def authenticate(database: Database, authorization: str | None) -> Caller:
    """The key's caller, or Unauthorized. A database lookup: call it on a thread, never the loop."""
    secret = _bearer_secret(authorization)
    with database.session() as session:
        row = key_store.authenticate(session, secret)
        if row is None:
            raise Unauthorized(
                f"Incorrect API key provided: ...{secret[-4:]}. "
                "Create one with `tuneforge keys create --org ORG`."
            )
        return Caller(row.id, row.owner)


class ApiKeyGate:
    """ASGI middleware: a /v1 request without a valid key is answered 401 before a byte of its body is
    read (a 1 GiB body from nobody must not be parsed or spooled). The caller it found rides in the
    request's state for `get_owner`."""

    def __init__(self, app: ASGIApp, settings: Settings, database: Database) -> None:
        self.app = app
        self.settings = settings
        self.database = database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.auth or not _is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        try:
            caller = await anyio.to_thread.run_sync(authenticate, self.database, authorization)
        except Unauthorized as exc:
            await JSONResponse(exc.envelope(), status_code=exc.status)(scope, receive, send)
            return
        scope.setdefault("state", {})[_CALLER] = caller
        await self.app(scope, receive, send)


def _is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


_CALLER = "tuneforge_caller"


async def get_owner(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's organisation; async, as the gate has already looked the key up off the loop."""
    settings: Settings = request.app.state.settings
    if not settings.auth:
        return settings.organization
    found = getattr(request.state, _CALLER, None)
    caller = found if isinstance(found, Caller) else None
    if caller is None:  # a route outside the gate's paths
        caller = await run_in_threadpool(authenticate, request.app.state.database, authorization)
    request.state.api_key_id = caller.key_id  # a streamed response checks it again (api/revocation.py)
    limiter: RateLimiter = request.app.state.rate_limiter
    if limiter.shared:  # a round trip to Redis: off the event loop
        await run_in_threadpool(limiter.check, caller.key_id)
    else:
        limiter.check(caller.key_id)
    return caller.owner


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

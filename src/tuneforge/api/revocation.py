"""A streamed response outlives the key check its request passed: while it streams, its key is looked up
again every few seconds (`key_recheck_s`), so that revoking a key also ends the streams it has open."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from tuneforge.errors import Unauthorized
from tuneforge.store import keys as key_store
from tuneforge.store.db import Database


class KeyWatch:
    """Built from the request after `get_owner` has let it in (it records the key's id there)."""

    def __init__(self, request: Request) -> None:
        self._key_id: str | None = getattr(request.state, "api_key_id", None)  # None: auth is off
        self._database: Database = request.app.state.database
        self._interval_s: float = request.app.state.settings.key_recheck_s
        self._checked = time.monotonic()

    async def check(self) -> None:
        """Raise Unauthorized once the key is revoked; looks it up at most once per interval."""
        if self._key_id is None or time.monotonic() - self._checked < self._interval_s:
            return
        self._checked = time.monotonic()
        if not await run_in_threadpool(self._active):
            raise Unauthorized("The API key of this stream was revoked", code="invalid_api_key")

    def _active(self) -> bool:
        with self._database.session() as session:
            return key_store.is_active(session, self._key_id or "")

"""How a worker answers one line of a batch: parsed by the routes' own wire models, under the same model
access rules as `/v1/completions`, answered by the same inference engine. Lives in the API layer (it needs
the wire models) and is handed to the workers as their `LineServer`."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from tuneforge import ids
from tuneforge.api.access import ensure_model_access
from tuneforge.api.errors import invalid_value
from tuneforge.api.protocol.chat import ChatCompletionRequest
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.errors import InvalidRequest
from tuneforge.inference.engine import Backend
from tuneforge.store.db import Database


class EngineLines:
    def __init__(self, database: Database, engine: Backend) -> None:
        self.database, self.engine = database, engine

    async def serve(self, owner: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
        wire = CompletionRequest if url == "/v1/completions" else ChatCompletionRequest
        try:
            request = wire.model_validate(body)
        except ValidationError as exc:
            raise invalid_value(exc.errors()) from exc
        if request.stream:
            raise InvalidRequest("a batch request cannot stream", param="stream")
        if ids.may_name_a_fine_tuned_model(request.model):  # base models need no lookup
            await asyncio.to_thread(ensure_model_access, self.database, owner, request.model)
        if isinstance(request, CompletionRequest):
            result = await self.engine.complete(request)
        else:
            result = await self.engine.chat(request)
        assert isinstance(result, dict)  # not streamed
        return result

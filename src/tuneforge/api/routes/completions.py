"""`POST /v1/completions` and `POST /v1/chat/completions`: parse the wire model, call the inference engine
(`app.state.inference`), return its response as JSON or its chunks as server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tuneforge.api.protocol.chat import ChatCompletionRequest, ChatCompletionResponse
from tuneforge.api.protocol.completions import CompletionRequest, CompletionResponse
from tuneforge.errors import TuneforgeError

if TYPE_CHECKING:
    from tuneforge.inference.engine import InferenceEngine

router = APIRouter()


@router.post("/completions", response_model=CompletionResponse)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    return _respond(await _engine(request).complete(body))


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    return _respond(await _engine(request).chat(body))


def _engine(request: Request) -> InferenceEngine:
    return request.app.state.inference  # type: ignore[no-any-return]


def _respond(result: dict[str, Any] | AsyncIterator[dict[str, Any]]) -> Response:
    if isinstance(result, dict):
        # orjson straight from the engine's dict: the response model documents the shape, and
        # re-validating every response would cost more than the forward pass of a short classification.
        return Response(orjson.dumps(result), media_type="application/json")
    return StreamingResponse(_sse(result), media_type="text/event-stream")


async def _sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """OpenAI's stream: one `data:` event per chunk, then `data: [DONE]`; an error mid-stream is sent
    as an error event, since the status line has already gone out."""
    try:
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except TuneforgeError as exc:
        yield b"data: " + orjson.dumps(exc.envelope()) + b"\n\n"
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a disconnected client cancels its sequences at once
    yield b"data: [DONE]\n\n"

"""`POST /v1/completions` and `POST /v1/chat/completions`: parse the wire model, call the inference engine
(`app.state.inference`), return its response as JSON or its chunks as server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tuneforge.api.protocol.chat import ChatCompletionRequest, ChatCompletionResponse
from tuneforge.api.protocol.completions import CompletionRequest, CompletionResponse
from tuneforge.api.revocation import KeyWatch
from tuneforge.errors import TuneforgeError

if TYPE_CHECKING:
    from tuneforge.inference.engine import InferenceEngine

router = APIRouter()

Result = dict[str, Any] | AsyncIterator[dict[str, Any]]  # a whole response, or a stream of chunks
DISCONNECT_POLL_S = 0.5  # how often a waiting non-streamed request checks that its client is still there
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection"; nobody receives it


@router.post("/completions", response_model=CompletionResponse)
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    return await _unless_disconnected(request, _engine(request).complete(body))


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    return await _unless_disconnected(request, _engine(request).chat(body))


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, Result]) -> Response:
    """Await the engine, cancelling it if the client goes away: a caller that timed out (and will likely
    retry) must not leave its long generation running in the batch beside everyone else's."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if done:
            return _respond(task.result(), KeyWatch(request))
        if await request.is_disconnected():
            task.cancel()  # the engine cancels the request's sequences as the cancellation unwinds it
            return Response(status_code=CLIENT_CLOSED)


def _engine(request: Request) -> InferenceEngine:
    return request.app.state.inference  # type: ignore[no-any-return]


def _respond(result: Result, watch: KeyWatch) -> Response:
    if isinstance(result, dict):
        # orjson straight from the engine's dict: the response model documents the shape, and
        # re-validating every response would cost more than the forward pass of a short classification.
        return Response(orjson.dumps(result), media_type="application/json")
    return StreamingResponse(_sse(result, watch), media_type="text/event-stream")


async def _sse(chunks: AsyncIterator[dict[str, Any]], watch: KeyWatch) -> AsyncIterator[bytes]:
    """OpenAI's stream: one `data:` event per chunk, then `data: [DONE]`; an error mid-stream (a key
    revoked meanwhile too) is sent as an error event, since the status line has already gone out."""
    try:
        async for chunk in chunks:
            await watch.check()
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except TuneforgeError as exc:
        yield b"data: " + orjson.dumps(exc.envelope()) + b"\n\n"
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a disconnected client cancels its sequences at once
    yield b"data: [DONE]\n\n"

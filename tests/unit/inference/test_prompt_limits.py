"""Over-long prompts are refused before they are tokenised whole, and never hold up other requests: a 5 MB
prompt used to stall every completion for 6-14 s before its 400."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tuneforge.api.protocol.chat import ChatCompletionRequest
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.errors import InvalidRequest
from tuneforge.inference.engine import InferenceEngine

HUGE = "word " * 1_000_000  # 5 MB


async def timed(work: Any) -> tuple[float, Any]:
    start = time.monotonic()
    try:
        result: Any = await work
    except InvalidRequest as exc:
        result = exc
    return time.monotonic() - start, result


async def short_beside(engine: InferenceEngine, huge: Any) -> tuple[tuple[float, Any], tuple[float, Any]]:
    await engine.complete(CompletionRequest(model="tiny", prompt="warm up", max_tokens=1))  # loads the model
    short = CompletionRequest(model="tiny", prompt="a short one", max_tokens=4)
    refused, served = await asyncio.gather(timed(huge), timed(engine.complete(short)))
    return refused, served


def test_a_5_mb_prompt_is_refused_at_once_and_others_are_served_meanwhile(engine: InferenceEngine) -> None:
    huge = engine.complete(CompletionRequest(model="tiny", prompt=HUGE, max_tokens=1))
    (refused_s, error), (served_s, served) = asyncio.run(short_beside(engine, huge))
    assert isinstance(error, InvalidRequest)
    assert (error.code, error.param) == ("context_length_exceeded", "prompt")
    assert "maximum context length is 1024 tokens" in error.message
    assert refused_s < 1.0, refused_s
    assert served["choices"][0]["finish_reason"] in ("length", "stop")
    assert served_s < 2.0, served_s


def test_a_5_mb_chat_message_is_refused_at_once(engine: InferenceEngine) -> None:
    request = ChatCompletionRequest(model="tiny", messages=[{"role": "user", "content": HUGE}])
    (refused_s, error), (_, served) = asyncio.run(short_beside(engine, engine.chat(request)))
    assert isinstance(error, InvalidRequest)
    assert (error.code, error.param) == ("context_length_exceeded", "messages")
    assert refused_s < 1.0, refused_s
    assert served["object"] == "text_completion"


def test_a_million_token_ids_are_refused_without_decoding_them(engine: InferenceEngine) -> None:
    huge = engine.complete(CompletionRequest(model="tiny", prompt=[65] * 1_000_000, max_tokens=1))
    (refused_s, error), _ = asyncio.run(short_beside(engine, huge))
    assert isinstance(error, InvalidRequest)
    assert error.code == "context_length_exceeded"
    assert "however your prompt is 1000000 tokens" in error.message
    assert refused_s < 1.0, refused_s


@pytest.mark.parametrize("factor", [2, 4])
def test_a_prompt_within_the_cheap_bound_is_still_counted_exactly(
    engine: InferenceEngine, factor: int
) -> None:
    """Short enough to tokenise, too long to fit: the answer names its exact token count, as before."""
    prompt = "a" * (1024 * factor)  # the byte-level tokenizer: one token per byte
    with pytest.raises(InvalidRequest) as refused:
        asyncio.run(engine.complete(CompletionRequest(model="tiny", prompt=prompt, max_tokens=1)))
    assert refused.value.code == "context_length_exceeded"
    assert "your prompt is" in refused.value.message

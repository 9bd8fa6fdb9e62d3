"""Concurrent requests share forward passes, and each result equals the same request served alone."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.api.routes import completions as completions_route
from tuneforge.inference.engine import InferenceEngine
from tuneforge.inference.scheduler import length_buckets


def _requests(model_dirs: dict[str, Path]) -> list[dict[str, Any]]:
    base = str(model_dirs["base"])
    return [
        {
            "model": "ft-full",
            "prompt": "I loved this film ->",
            "max_tokens": 12,
            "temperature": 0,
            "logprobs": 3,
        },
        {"model": "ft-full", "prompt": "awful acting ->", "max_tokens": 1, "temperature": 0, "logprobs": 5},
        {"model": "ft-full", "prompt": "a", "max_tokens": 20, "temperature": 0.9, "seed": 11, "n": 2},
        {
            "model": "ft-lora",
            "prompt": "what a dull story ->",
            "max_tokens": 9,
            "temperature": 0,
            "logprobs": 1,
        },
        {"model": base, "prompt": "what a dull story ->", "max_tokens": 7, "temperature": 0, "logprobs": 1},
        {"model": "tiny", "prompt": "hello there, a longer prompt", "max_tokens": 16, "temperature": 0},
        {"model": "tiny", "prompt": "hi", "max_tokens": 10, "temperature": 0, "stop": "\ufffd\ufffd"},
        {"model": "ft-full", "prompt": ["x ->", "what a great story ->"], "max_tokens": 6, "temperature": 0},
    ]


async def _one(engine: InferenceEngine, fields: dict[str, Any]) -> dict[str, Any]:
    result = await engine.complete(CompletionRequest(**fields))
    assert isinstance(result, dict)
    return result


def _comparable(response: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            c["text"],
            c["finish_reason"],
            c["logprobs"] and c["logprobs"]["tokens"],
            c["logprobs"] and c["logprobs"]["text_offset"],
        )
        for c in response["choices"]
    ]


def test_batched_results_equal_one_by_one_results(engine, model_dirs) -> None:
    requests = _requests(model_dirs)

    async def alone() -> list[dict[str, Any]]:
        return [await _one(engine, r) for r in requests]

    async def together() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(_one(engine, r) for r in requests)))

    solo = asyncio.run(alone())  # also loads every model, so the concurrent run starts together
    passes = engine.runtime.scheduler.forward_passes
    batched = asyncio.run(together())
    batched_passes = engine.runtime.scheduler.forward_passes - passes
    assert batched_passes < passes * 0.85  # fewer passes, though four models cannot share one
    for one, many in zip(solo, batched, strict=True):
        assert _comparable(one) == _comparable(many)
        for a, b in zip(one["choices"], many["choices"], strict=True):
            if a["logprobs"]:
                assert a["logprobs"]["token_logprobs"] == pytest.approx(
                    b["logprobs"]["token_logprobs"], abs=1e-4
                )
        assert one["usage"] == many["usage"]


def test_a_disconnected_stream_stops_and_never_blocks_others(engine) -> None:
    async def scenario() -> dict[str, Any]:
        fields = {"model": "tiny", "prompt": "hello", "max_tokens": 200, "stream": True}
        stream = await engine.complete(CompletionRequest(**fields))
        assert not isinstance(stream, dict)
        await anext(stream)  # a client that reads one chunk and goes away
        await stream.aclose()
        other = await _one(engine, {"model": "tiny", "prompt": "hi", "max_tokens": 5, "temperature": 0})
        for _ in range(100):  # the abandoned sequence leaves the batch within a step or two
            if not engine.runtime.scheduler._batches:
                break
            await asyncio.sleep(0.01)
        return other

    other = asyncio.run(scenario())
    assert other["choices"][0]["finish_reason"] == "length"
    assert not engine.runtime.scheduler._batches
    assert engine.runtime.registry._entries["tiny"].in_flight == 0


def test_a_non_streamed_request_whose_client_left_is_cancelled(engine, monkeypatch) -> None:
    monkeypatch.setattr(completions_route, "DISCONNECT_POLL_S", 0.05)

    class GoneClient:  # what Starlette's Request reports once the caller has hung up
        async def is_disconnected(self) -> bool:
            return True

    async def scenario() -> tuple[int, int]:
        fields = {"model": "tiny", "prompt": "hello", "max_tokens": 1000, "temperature": 0}
        await _one(engine, {**fields, "max_tokens": 1})  # loaded, so the long request starts at once
        # Greedy, tiny ends its text after a few hundred tokens; barred from ending, only a cancel stops it.
        eos = engine.runtime.registry._entries["tiny"].tokenizer.eos_token_id
        fields["logit_bias"] = {str(eos): -100}
        work = engine.complete(CompletionRequest(**fields))
        response = await completions_route._unless_disconnected(GoneClient(), work)  # type: ignore[arg-type]
        for _ in range(100):  # a cancelled sequence leaves the batch within a step
            if not engine.runtime.scheduler._batches:
                break
            await asyncio.sleep(0.01)
        settled = engine.runtime.scheduler.forward_passes
        await asyncio.sleep(0.3)  # an abandoned generation would run on meanwhile (no loop shutdown yet)
        return response.status_code, engine.runtime.scheduler.forward_passes - settled

    # The abandoned task lives only in a reference cycle: the cyclic collector could close it and cancel its
    # sequences by accident, hiding a route that forgot to. Paused, only the route's own cancel stops it.
    gc.disable()
    try:
        status, passes_after_hang_up = asyncio.run(scenario())
    finally:
        gc.enable()
    assert status == completions_route.CLIENT_CLOSED
    assert not engine.runtime.scheduler._batches and passes_after_hang_up == 0
    assert engine.runtime.registry._entries["tiny"].in_flight == 0


def test_a_slow_stream_reader_does_not_hold_up_other_requests(engine) -> None:
    async def scenario() -> int:
        fields = {"model": "tiny", "prompt": "hello", "max_tokens": 40, "stream": True, "temperature": 0}
        slow = await engine.complete(CompletionRequest(**fields))
        assert not isinstance(slow, dict)
        await anext(slow)  # then not read while others run
        for _ in range(3):
            await _one(engine, {"model": "tiny", "prompt": "hi", "max_tokens": 30, "temperature": 0})
        chunks = [chunk async for chunk in slow]
        return len(chunks)

    assert asyncio.run(scenario()) > 0


def test_concurrent_requests_to_one_model_share_decode_steps(engine) -> None:
    prompts = [f"request {i} ->" + "x" * i for i in range(16)]

    async def together() -> list[dict[str, Any]]:
        requests = [{"model": "tiny", "prompt": p, "max_tokens": 8, "temperature": 0} for p in prompts]
        return list(await asyncio.gather(*(_one(engine, r) for r in requests)))

    asyncio.run(_one(engine, {"model": "tiny", "prompt": "warm", "max_tokens": 1}))
    before = engine.runtime.scheduler.forward_passes
    results = asyncio.run(together())
    passes = engine.runtime.scheduler.forward_passes - before
    assert all(r["choices"][0]["finish_reason"] == "length" for r in results)
    assert passes <= 8 + 4  # 16 x 8 tokens in about 8 decode steps and a few prefill passes, not 128


def test_prefill_buckets_split_prompts_by_length_only_where_padding_costs_more_than_a_pass() -> None:
    class Prompt:
        def __init__(self, length: int) -> None:
            self.prompt_ids = [0] * length

    lengths = [30, 6, 18, 6, 31, 20, 23, 6, 32, 26, 29, 20]
    buckets = length_buckets([Prompt(n) for n in lengths], pass_cost=32)  # type: ignore[misc]
    shapes = [[len(p.prompt_ids) for p in bucket] for bucket in buckets]
    assert sorted(n for shape in shapes for n in shape) == sorted(lengths)  # each prompt exactly once
    assert shapes[0] == [6, 6, 6]  # the short prompts are not padded to 32
    padded = sum(max(shape) * len(shape) + 32 for shape in shapes)
    assert padded < max(lengths) * len(lengths) + 32
    same = length_buckets([Prompt(8) for _ in range(10)], pass_cost=32)  # type: ignore[misc]
    assert [len(b) for b in same] == [10]  # equal lengths: one pass

"""The inference engine in a child process (`ProcessEngine`): it answers exactly as the in-process engine,
typed errors keep their status and param across the pipe, a cancelled request stops computing in the
child, a child killed mid-request gives a 503 and is replaced, and a killed parent takes its child along."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tuneforge.api.app import model_locator
from tuneforge.api.protocol.chat import ChatCompletionRequest
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.catalog import resolve
from tuneforge.errors import EngineUnavailable, InvalidRequest, NotFound
from tuneforge.evaluation.completers import EngineCompleter
from tuneforge.evaluation.requests import CompletionRequest as EvalCompletion
from tuneforge.inference.process import ProcessEngine
from tuneforge.settings import Settings
from tuneforge.training import base_models

PROMPT = "I loved this film ->"


@pytest.fixture(scope="module")
def child_settings(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Settings:
    data_dir = tmp_path_factory.mktemp("process-data")
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir, inference_threads=1)


@pytest.fixture(scope="module")
def never_ending(child_settings: Settings) -> dict[str, float]:
    """A logit_bias that bars tiny's end-of-text token: greedy, it would end after a few hundred tokens."""
    tokenizer = base_models.load_tokenizer(resolve("tiny", child_settings), child_settings)
    return {str(tokenizer.eos_token_id): -100}


@pytest.fixture(scope="module")
def process_engine(child_settings: Settings) -> Iterator[ProcessEngine]:
    engine = ProcessEngine(child_settings, model_locator)
    yield engine
    engine.close()


def test_the_child_leaves_a_core_to_the_api_unless_told(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    assert ProcessEngine(Settings(data_dir=tmp_path), model_locator).settings.inference_threads == max(
        1, cores - 1
    )
    told = Settings(data_dir=tmp_path, inference_threads=3)
    assert ProcessEngine(told, model_locator).settings.inference_threads == 3


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k not in ("id", "created")}


async def streamed(engine: ProcessEngine, request: CompletionRequest) -> list[dict[str, Any]]:
    return [chunk async for chunk in await engine.complete(request)]  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_child_answers_as_the_in_process_engine(process_engine, engine) -> None:
    request = {"model": "tiny", "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "logprobs": 5}
    request |= {"echo": True}
    here = asyncio.run(engine.complete(CompletionRequest(**request)))
    there = asyncio.run(process_engine.complete(CompletionRequest(**request)))
    assert comparable(there) == comparable(here)

    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}
    chat |= {"temperature": 0, "logprobs": True, "top_logprobs": 3}
    here = asyncio.run(engine.chat(ChatCompletionRequest(**chat)))
    there = asyncio.run(process_engine.chat(ChatCompletionRequest(**chat)))
    assert comparable(there) == comparable(here)


def test_evaluation_requests_cross_the_pipe(process_engine, engine) -> None:
    """`/v1/evaluations` sends its own request dataclasses through whichever backend the app has."""
    request = EvalCompletion(model="tiny", prompt=PROMPT, max_tokens=1, temperature=0, logprobs=5)
    here = asyncio.run(EngineCompleter(engine).complete(request))
    there = asyncio.run(EngineCompleter(process_engine).complete(request))
    assert comparable(there) == comparable(here)


def test_streamed_text_equals_whole_text(process_engine) -> None:
    request = {"model": "tiny", "prompt": PROMPT, "max_tokens": 10, "temperature": 0}
    whole = asyncio.run(process_engine.complete(CompletionRequest(**request)))
    chunks = asyncio.run(streamed(process_engine, CompletionRequest(**request, stream=True)))
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_the_loaded_adapters_are_asked_across_the_pipe(child_settings) -> None:
    engine = ProcessEngine(child_settings, model_locator)
    try:
        assert asyncio.run(engine.adapters()) == [] and engine.child_pid is None  # asking starts no child
        asyncio.run(engine.complete(CompletionRequest(model="tiny", prompt=PROMPT, max_tokens=1)))
        assert asyncio.run(engine.adapters()) == []  # the child answers: a base alone holds no adapter
    finally:
        engine.close()


def test_typed_errors_keep_their_param(process_engine) -> None:
    with pytest.raises(NotFound) as missing:
        asyncio.run(process_engine.complete(CompletionRequest(model="no-such-model", prompt="x")))
    assert missing.value.param == "model" and missing.value.status == 404
    with pytest.raises(InvalidRequest) as too_long:
        asyncio.run(process_engine.complete(CompletionRequest(model="tiny", prompt="x", max_tokens=5000)))
    assert too_long.value.param == "max_tokens"


@pytest.mark.parametrize("stream", [False, True])
def test_a_cancelled_request_stops_computing_in_the_child(process_engine, never_ending, stream) -> None:
    long = CompletionRequest(
        model="tiny", prompt=PROMPT, max_tokens=1000, temperature=0, stream=stream, logit_bias=never_ending
    )

    async def start_then_abandon() -> None:
        if stream:
            chunks = await process_engine.complete(long)
            await anext(chunks)  # type: ignore[call-overload]
            await chunks.aclose()  # type: ignore[union-attr]
        else:
            task = asyncio.ensure_future(process_engine.complete(long))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(process_engine.complete(CompletionRequest(model="tiny", prompt="warm", max_tokens=1)))
    pid = process_engine.child_pid
    assert pid is not None
    asyncio.run(start_then_abandon())
    time.sleep(0.3)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    # 1,000 tokens take the child well over a second of CPU; abandoned, it idles.
    assert cpu_seconds(pid) - before < 0.3


def test_a_killed_child_fails_its_requests_and_is_replaced(child_settings, never_ending) -> None:
    engine = ProcessEngine(child_settings, model_locator)
    long = CompletionRequest(
        model="tiny", prompt=PROMPT, max_tokens=1000, temperature=0, logit_bias=never_ending
    )
    try:
        asyncio.run(engine.complete(CompletionRequest(model="tiny", prompt="warm", max_tokens=1)))
        first = engine.child_pid
        assert first is not None

        async def kill_mid_request() -> None:
            task = asyncio.ensure_future(engine.complete(long))
            await asyncio.sleep(0.3)
            os.kill(first, signal.SIGKILL)
            with pytest.raises(EngineUnavailable) as lost:
                await task
            assert lost.value.status == 503 and "retry" in lost.value.message

        asyncio.run(kill_mid_request())
        again = asyncio.run(engine.complete(CompletionRequest(model="tiny", prompt=PROMPT, max_tokens=2)))
        assert again["choices"][0]["finish_reason"] == "length"
        assert engine.child_pid not in (None, first)
    finally:
        engine.close()


def test_the_child_exits_when_its_parent_is_killed(child_settings) -> None:
    """The API process holds no torch (the child does); `kill -9` on it leaves no orphan behind."""
    code = (
        "import asyncio, sys, time\n"
        "from tuneforge.api.app import model_locator\n"
        "from tuneforge.api.protocol.completions import CompletionRequest\n"
        "from tuneforge.inference.process import ProcessEngine\n"
        "from tuneforge.settings import Settings\n"
        f"engine = ProcessEngine(Settings(data_dir={str(child_settings.data_dir)!r}), model_locator)\n"
        "asyncio.run(engine.complete(CompletionRequest(model='tiny', prompt='hi', max_tokens=1)))\n"
        "assert 'torch' not in sys.modules\n"
        "print(engine.child_pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 120)  # never hang the suite on a stuck start
        assert ready, "the parent never reported its child"
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a reaped child of a dead parent is reparented and reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"

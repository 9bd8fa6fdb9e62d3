"""The inference engine in its own process, behind the same four methods as `InferenceEngine`.

Why: the API's event loop (HTTP parsing, validation, JSON) and the scheduler's forward passes are both
Python, and one process runs Python on one core at a time (the GIL). Under 32 concurrent clients the two
threads shared one core, each holding the GIL about half the time, while the machine's other core sat
idle. In a child process the scheduler has a core of its own, which is vLLM's split of API server and
engine core.

Requests and answers cross one pipe as pickled tuples: `(op, call id, payload)` one way and `(call id,
kind, payload)` back, where kind is `result`, `error`, or `stream` followed by `chunk`s and `end`. The child
starts on the first request (it imports torch). If it dies, the requests in flight fail with a 503 and the
next request starts a new one; if the API process dies, even by `kill -9`, the child reads end-of-file on
the pipe and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from tuneforge.errors import EngineUnavailable, TuneforgeError
from tuneforge.inference.engine import Locate, Result
from tuneforge.inference.requests import ChatParams, CompletionParams
from tuneforge.settings import Settings

log = logging.getLogger(__name__)

MakeLocate = Callable[[Settings], Locate]  # picklable by reference: the child builds its own locator
_CLOSE_TIMEOUT_S = 10.0


class ProcessEngine:
    """A `Backend` whose forward passes run in a child process."""

    def __init__(self, settings: Settings, make_locate: MakeLocate) -> None:
        self.settings = _leave_a_core_for_the_api(settings)
        self._make_locate = make_locate
        self._lock = threading.Lock()
        self._child: _Child | None = None

    async def complete(self, req: CompletionParams) -> Result:
        return await self._running().call("complete", req)

    async def chat(self, req: ChatParams) -> Result:
        return await self._running().call("chat", req)

    def unload(self, name: str) -> None:
        with self._lock, contextlib.suppress(EngineUnavailable):  # a child that just died holds nothing
            if self._child is not None and not self._child.dead:
                self._child.post(("unload", None, name))

    async def adapters(self) -> list[dict[str, Any]]:
        """The child's loaded adapters; asking never starts a child (nothing is loaded without one)."""
        with self._lock:
            child = self._child if self._child is not None and not self._child.dead else None
        if child is None:
            return []
        result = await child.call("adapters", None)
        assert isinstance(result, dict)
        return list(result["data"])

    def close(self) -> None:
        with self._lock:
            if self._child is not None:
                self._child.close()
                self._child = None

    @property
    def child_pid(self) -> int | None:
        """The child's process id while one runs (for operators and tests)."""
        child = self._child
        return child.pid if child is not None and not child.dead else None

    def _running(self) -> _Child:
        with self._lock:
            if self._child is None or self._child.dead:
                if self._child is not None:
                    self._child.close()
                self._child = _Child(self.settings, self._make_locate)
            return self._child


def _leave_a_core_for_the_api(settings: Settings) -> Settings:
    """Unless set, the child's torch threads are the usable cores less one: the API process needs a core
    too, and torch threads contending with it cost more than they add (bench/completions_load.py on two
    cores: about 140 requests/s with two threads, 185 with one)."""
    if settings.inference_threads is not None:
        return settings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return settings.model_copy(update={"inference_threads": max(1, cores - 1)})


class _Call:
    """One request's answers, delivered from the reader thread onto the request's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.answers: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def deliver(self, kind: str, payload: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the request's loop has closed: nobody is waiting
            self.loop.call_soon_threadsafe(self.answers.put_nowait, (kind, payload))


class _Child:
    def __init__(self, settings: Settings, make_locate: MakeLocate) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy the API's threads and locks
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=child_main,
            args=(child_end, settings, make_locate),
            name="tuneforge-inference",
            daemon=True,
        )
        self._process.start()
        child_end.close()  # only the child holds its end: our exit is its end-of-file
        self.pid = self._process.pid
        self.dead = False
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count()
        self._reader = threading.Thread(target=self._read, name="tuneforge-inference-reader", daemon=True)
        self._reader.start()

    async def call(self, op: str, req: Any) -> Result:
        call_id = next(self._ids)
        call = _Call(asyncio.get_running_loop())
        self._calls[call_id] = call  # before sending, so a crash right after still reaches this call
        self.post((op, call_id, req))
        try:
            kind, payload = await call.answers.get()
        except BaseException:  # cancelled (the client went away): the child drops the request too
            self._forget(call_id, cancel=True)
            raise
        if kind == "stream":
            return self._stream(call_id, call)
        self._forget(call_id, cancel=False)
        if kind == "error":
            raise payload
        return payload  # type: ignore[no-any-return]

    async def _stream(self, call_id: int, call: _Call) -> AsyncIterator[dict[str, Any]]:
        ended = False
        try:
            while True:
                kind, payload = await call.answers.get()
                if kind == "error":
                    ended = True
                    raise payload
                if kind == "end":
                    ended = True
                    return
                yield payload
        finally:
            self._forget(call_id, cancel=not ended)

    def post(self, message: tuple[str, int | None, Any]) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError) as exc:  # the pipe is closed: the child is gone
            self._lost()
            raise _lost_error(self._process.exitcode) from exc

    def _forget(self, call_id: int, *, cancel: bool) -> None:
        self._calls.pop(call_id, None)
        if cancel and not self.dead:
            with contextlib.suppress(EngineUnavailable):
                self.post(("cancel", call_id, None))

    def _read(self) -> None:
        try:
            while True:
                call_id, kind, payload = self._conn.recv()
                call = self._calls.get(call_id)
                if call is not None:
                    call.deliver(kind, payload)
        except (EOFError, OSError):
            pass  # the child exited, or we closed the pipe
        except Exception:
            log.exception("reading from the inference process failed")
        self._lost()

    def _lost(self) -> None:
        """The child is gone: every request still waiting gets a 503 (clients retry those)."""
        if self.dead:
            return
        self.dead = True
        self._process.join(timeout=1)
        error = _lost_error(self._process.exitcode)
        for call in list(self._calls.values()):
            call.deliver("error", error)
        self._calls.clear()

    def close(self) -> None:
        if not self.dead:
            try:
                with self._send_lock:
                    self._conn.send(("close", None, None))
            except (OSError, ValueError):
                pass
        self._process.join(timeout=_CLOSE_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._reader.join(timeout=_CLOSE_TIMEOUT_S)


def _lost_error(exitcode: int | None) -> EngineUnavailable:
    how = f"exit code {exitcode}" if exitcode is not None else "no exit code yet"
    return EngineUnavailable(
        f"The inference process stopped ({how}; the server's log says why); "
        "retry the request to start a new one"
    )


# -- the child -------------------------------------------------------------------------------------------


def child_main(conn: Connection, settings: Settings, make_locate: MakeLocate) -> None:
    """The child's entry point: serve requests from the pipe until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group; the parent stops us
    from tuneforge.inference.engine import InferenceEngine

    engine = InferenceEngine(settings, make_locate(settings))
    try:
        asyncio.run(_ChildServer(conn, engine).run())
    finally:
        engine.close()
        conn.close()


class _ChildServer:
    def __init__(self, conn: Connection, engine: Any) -> None:
        self._conn = conn
        self._engine = engine
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        reader = threading.Thread(target=self._read, args=(loop, closed), name="tuneforge-pipe", daemon=True)
        reader.start()
        await closed.wait()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _read(self, loop: asyncio.AbstractEventLoop, closed: asyncio.Event) -> None:
        """Pipe to event loop. End-of-file means the API process is gone, however it died."""
        try:
            while True:
                message = self._conn.recv()
                if message[0] == "close":
                    break
                loop.call_soon_threadsafe(self._dispatch, *message)
        except (EOFError, OSError):
            pass
        loop.call_soon_threadsafe(closed.set)

    def _dispatch(self, op: str, call_id: int | None, payload: Any) -> None:
        if op == "complete" or op == "chat":
            assert call_id is not None
            work = self._engine.complete(payload) if op == "complete" else self._engine.chat(payload)
            self._tasks[call_id] = asyncio.ensure_future(self._answer(call_id, work))
        elif op == "cancel":
            task = self._tasks.get(call_id) if call_id is not None else None
            if task is not None:
                task.cancel()  # the engine cancels the request's sequences as the cancellation unwinds
        elif op == "unload":
            self._engine.unload(payload)
        elif op == "adapters":
            assert call_id is not None
            self._tasks[call_id] = asyncio.ensure_future(self._answer(call_id, self._adapters()))

    async def _adapters(self) -> Result:
        return {"data": await self._engine.adapters()}

    async def _answer(self, call_id: int, work: Coroutine[Any, Any, Result]) -> None:
        try:
            result = await work
            if isinstance(result, dict):
                self._send(call_id, "result", result)
                return
            self._send(call_id, "stream", None)
            try:
                async for chunk in result:
                    self._send(call_id, "chunk", chunk)
            finally:
                aclose = getattr(result, "aclose", None)
                if aclose is not None:
                    await aclose()
            self._send(call_id, "end", None)
        except asyncio.CancelledError:
            pass  # the parent has forgotten this call
        except Exception as exc:
            self._send(call_id, "error", _picklable(exc))
        finally:
            self._tasks.pop(call_id, None)

    def _send(self, call_id: int, kind: str, payload: Any) -> None:
        with contextlib.suppress(OSError, ValueError):  # the parent is gone; our reader is stopping us
            self._conn.send((call_id, kind, payload))


def _picklable(exc: Exception) -> Exception:
    """The error itself where it survives the pipe (typed errors keep their status and param)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        log.exception("inference failed")
        return TuneforgeError(f"{type(exc).__name__}: {exc}")

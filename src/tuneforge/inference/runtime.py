"""The engine's loaded half: registry + scheduler, and `Job`, the bridge from scheduler-thread progress to
the request's event loop. Imported on the first completion, so the API starts without torch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import ParamSpec, TypeVar

from tuneforge.errors import TuneforgeError
from tuneforge.inference.registry import LoadedModel, Locate, ModelRegistry
from tuneforge.inference.scheduler import Scheduler
from tuneforge.inference.sequence import Progress, SamplingParams, Sequence
from tuneforge.settings import Settings

T = TypeVar("T")
P = ParamSpec("P")

# Tokenising this many characters takes well under a millisecond, less than a hop to a thread; longer
# texts tokenise on a thread, so this loop keeps relaying every other request's tokens meanwhile.
INLINE_TOKENIZE_CHARS = 16_384


async def off_the_loop_if_long(chars: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    if chars <= INLINE_TOKENIZE_CHARS:
        return work(*args, **kwargs)
    return await asyncio.to_thread(work, *args, **kwargs)


class Runtime:
    def __init__(self, settings: Settings, locate: Locate) -> None:
        if settings.inference_threads:
            import torch

            torch.set_num_threads(settings.inference_threads)
        self.registry = ModelRegistry(settings, locate)
        self.scheduler = Scheduler(
            settings.inference_max_batch,
            settings.inference_max_prefill_tokens,
            mixed=settings.inference_adapter_batching == "mixed",
        )

    async def acquire(self, name: str) -> LoadedModel:
        """The model for `name`, loaded off the event loop; `release` it when the request is done."""
        loaded = self.registry.get_loaded(name)  # the common case skips a thread-pool round trip
        return loaded if loaded is not None else await asyncio.to_thread(self.registry.get, name)

    def release(self, model: LoadedModel) -> None:
        self.registry.release(model)

    def start(
        self, model: LoadedModel, prompts: list[tuple[list[int], SamplingParams, int]], *, stream: bool
    ) -> Job:
        """Submit one sequence per (prompt ids, params, choice index)."""
        job = Job(asyncio.get_running_loop())
        job.seqs = [
            Sequence(model, ids, params, index=index, notify=job.notify, stream=stream)
            for ids, params, index in prompts
        ]
        self.scheduler.submit(job.seqs)
        return job

    def close(self) -> None:
        self.scheduler.close()
        self.registry.close()


class Job:
    """The sequences of one request; progress arrives on the request's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[tuple[Sequence, Progress]] = asyncio.Queue()
        self.seqs: list[Sequence] = []

    def notify(self, seq: Sequence, progress: Progress) -> None:
        """Called on the scheduler thread; never blocks it."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (seq, progress))
        except RuntimeError:  # the request's loop is gone: nobody is listening
            seq.cancelled = True

    async def events(self) -> AsyncIterator[tuple[Sequence, Progress]]:
        """Progress until every sequence has finished; raises a sequence's error."""
        pending = len(self.seqs)
        while pending:
            seq, progress = await self._events.get()
            if seq.error is not None:
                raise _as_error(seq.error)
            if progress.finish_reason is not None:
                pending -= 1
            yield seq, progress

    async def wait(self) -> list[Sequence]:
        async for _ in self.events():
            pass
        return self.seqs

    def cancel(self) -> None:
        for seq in self.seqs:
            seq.cancelled = True


def _as_error(error: BaseException) -> Exception:
    if isinstance(error, TuneforgeError):
        return error
    return TuneforgeError(f"Generation failed: {type(error).__name__}: {error}")

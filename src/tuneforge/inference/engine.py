"""The inference engine the API calls: `complete` and `chat` take a request and return an OpenAI response
(a dict) or, for `stream`, an async iterator of chunks.

Constructing it is cheap and imports no torch: the registry and scheduler start on the first request, so
the API's cold start stays fast. This class is the backend seam: a vLLM-backed engine with the same four
methods can serve the same routes on GPU hosts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tuneforge.catalog import ModelRef
from tuneforge.inference.requests import ChatParams, CompletionParams
from tuneforge.settings import Settings

if TYPE_CHECKING:
    from tuneforge.inference.runtime import Runtime

Locate = Callable[[str], ModelRef | Path]
Result = dict[str, Any] | AsyncIterator[dict[str, Any]]


class Backend(Protocol):
    """What the API needs from a serving backend."""

    async def complete(self, req: CompletionParams) -> Result: ...
    async def chat(self, req: ChatParams) -> Result: ...
    def unload(self, name: str) -> None: ...
    async def adapters(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class InferenceEngine:
    def __init__(self, settings: Settings, locate: Locate) -> None:
        self.settings = settings
        self._locate = locate
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> Runtime:
        """The registry and scheduler, started on first use (this is where torch gets imported)."""
        with self._lock:
            if self._runtime is None:
                from tuneforge.inference.runtime import Runtime

                self._runtime = Runtime(self.settings, self._locate)
            return self._runtime

    async def _started(self) -> Runtime:
        """The runtime; the first call starts it off the event loop (importing torch takes seconds)."""
        if self._runtime is not None:
            return self._runtime
        return await asyncio.to_thread(lambda: self.runtime)

    async def complete(self, req: CompletionParams) -> Result:
        from tuneforge.inference.completions import create

        return await create(await self._started(), req)

    async def chat(self, req: ChatParams) -> Result:
        from tuneforge.inference.chat import create

        return await create(await self._started(), req)

    def unload(self, name: str) -> None:
        """Forget a model (it was deleted); requests already running on it finish first."""
        if self._runtime is not None:
            self._runtime.registry.unload(name)

    async def adapters(self) -> list[dict[str, Any]]:
        """The LoRA adapters in memory, least recently used first; none before the first request."""
        runtime = self._runtime
        return runtime.registry.adapters() if runtime is not None else []

    def close(self) -> None:
        with self._lock:
            if self._runtime is not None:
                self._runtime.close()
                self._runtime = None

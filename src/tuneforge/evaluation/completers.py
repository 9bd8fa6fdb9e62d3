"""Where predictions come from: the in-process inference engine (the code behind `/v1/completions`) or a
running tuneforge (or any OpenAI-compatible) server over HTTP. Both answer with OpenAI response dicts."""

from __future__ import annotations

from typing import Any, Protocol

from tuneforge.errors import InvalidRequest, TuneforgeError
from tuneforge.evaluation.requests import ChatRequest, CompletionRequest


class Completer(Protocol):
    async def complete(self, req: CompletionRequest) -> dict[str, Any]: ...
    async def chat(self, req: ChatRequest) -> dict[str, Any]: ...


class EngineCompleter:
    """Adapts `tuneforge.inference.engine.InferenceEngine` (or any backend with its methods)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def complete(self, req: CompletionRequest) -> dict[str, Any]:
        return _whole(await self.engine.complete(req))

    async def chat(self, req: ChatRequest) -> dict[str, Any]:
        return _whole(await self.engine.chat(req))


def _whole(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):  # only streaming requests get an iterator, and we never stream
        raise TypeError("expected a whole response, got a stream")
    return result


class HttpCompleter:
    """POSTs to `<api_base>/completions` and `/chat/completions`; errors keep the server's message."""

    def __init__(
        self, api_base: str, api_key: str, *, timeout_s: float = 600.0, transport: Any = None
    ) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=api_base.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,  # tests: an in-process app
        )

    async def complete(self, req: CompletionRequest) -> dict[str, Any]:
        return await self._post("/completions", req.wire())

    async def chat(self, req: ChatRequest) -> dict[str, Any]:
        return await self._post("/chat/completions", req.wire())

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(path, json=body)
        if response.status_code >= 400:
            try:
                error = response.json().get("error") or {}
            except ValueError:
                error = {"message": response.text}
            cls = InvalidRequest if response.status_code < 500 else TuneforgeError
            raise cls(f"{path}: {error.get('message')}", param=error.get("param"))
        data: dict[str, Any] = response.json()
        return data

    async def aclose(self) -> None:
        await self.client.aclose()

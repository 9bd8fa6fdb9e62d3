"""The requests evaluation sends: plain dataclasses with the fields of OpenAI's completions and chat
completions requests, so the same objects go to the in-process engine (which reads them through its
structural types) and, as JSON, to a running server."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str | list[str]
    max_tokens: int = 16
    temperature: float = 0.0  # greedy: an evaluation must be reproducible
    top_p: float = 1.0
    n: int = 1
    best_of: int | None = None
    echo: bool = False
    logprobs: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    suffix: str | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] = field(default_factory=dict)
    stream: bool = False
    stream_options: None = None

    def wire(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def text(self) -> str:
        return self.content


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    logprobs: bool = False
    top_logprobs: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] = field(default_factory=dict)
    stream: bool = False
    stream_options: None = None

    def wire(self) -> dict[str, Any]:
        body = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        body["messages"] = [{"role": m.role, "content": m.content} for m in self.messages]
        return body

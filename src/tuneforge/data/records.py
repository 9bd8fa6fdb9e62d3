"""Training records: the two shapes a fine-tuning file may hold (OpenAI's legacy prompt/completion pairs
and the chat format). Pure data; readers produce them, the training recipe consumes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class PromptCompletion:
    prompt: str
    completion: str


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    weight: float | None = None  # assistant turns only: 0 excludes the turn from the loss


@dataclass(frozen=True)
class Chat:
    messages: tuple[ChatMessage, ...]


Record = PromptCompletion | Chat

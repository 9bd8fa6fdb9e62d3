"""Training records: the shapes a fine-tuning file may hold (OpenAI's legacy prompt/completion pairs, the
chat format, preference pairs for DPO and reinforcement items for graders). Pure data; readers produce
them, the training recipe consumes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class PreferencePair:
    """One DPO example: a conversation and two answers to it, the preferred one and the other."""

    messages: tuple[ChatMessage, ...]  # the input, ending in a user turn
    preferred: tuple[ChatMessage, ...]  # assistant messages
    non_preferred: tuple[ChatMessage, ...]
    tools: tuple[dict[str, Any], ...] = ()  # the input's function tools, as written


@dataclass(frozen=True)
class ReinforcementItem:
    """One reinforcement example: a conversation ending in a user turn, for the model to answer, and the
    line's other fields, which graders read as `{{item.<field>}}`."""

    messages: tuple[ChatMessage, ...]
    fields: dict[str, Any] = field(default_factory=dict, hash=False)


Record = PromptCompletion | Chat  # what supervised training reads
AnyRecord = PromptCompletion | Chat | PreferencePair | ReinforcementItem

"""Wire models for `POST /v1/completions`: OpenAI's field names and order, pure data, nothing heavy imported.

Every optional field accepts an explicit null meaning "the default" (the legacy CLI sends every unset option
as null), and unknown fields are ignored, as OpenAI does. Range checks that must name a param in a 400 live in
the serving layer, so their messages match OpenAI's rather than pydantic's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Prompt = str | list[str] | list[int] | list[list[int]]


class WireModel(BaseModel):
    """Base for requests: extra fields ignored, explicit nulls replaced by the field's default."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _nulls_mean_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class StreamOptions(WireModel):
    include_usage: bool = False


class CompletionRequest(WireModel):
    model: str
    prompt: Prompt = "<|endoftext|>"  # OpenAI's default: generate from the start of a document
    best_of: int | None = None  # default: n
    echo: bool = False
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] = Field(default_factory=dict)
    logprobs: int | None = None
    max_tokens: int = 16
    n: int = 1
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    user: str | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None

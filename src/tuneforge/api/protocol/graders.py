"""Wire models for `POST /v1/fine_tuning/alpha/graders/run` and `/validate`: OpenAI's field names, pure
data. The grader objects themselves are `tuneforge.graders.models`, shared with the job's method."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.graders import Grader


class ValidateGraderRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grader: Grader


class ValidateGraderResponse(BaseModel):
    grader: dict[str, Any]


class RunGraderRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grader: Grader
    model_sample: str
    item: dict[str, Any] = Field(default_factory=dict)


class RunGraderMetadata(BaseModel):
    name: str
    type: str
    errors: dict[str, Any]
    execution_time: float
    scores: dict[str, Any]
    token_usage: int | None = None
    sampled_model_name: str | None = None
    warnings: list[str] = Field(default_factory=list)  # tuneforge's addition: what each failure was


class RunGraderResponse(BaseModel):
    reward: float
    metadata: RunGraderMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]

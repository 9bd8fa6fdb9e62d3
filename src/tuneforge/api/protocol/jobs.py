"""Wire models for /v1/fine_tuning/jobs (current spec: FineTuningJob, its events and checkpoints)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.protocol.hyperparameters import JobHyperparameters, Method
from tuneforge.spec import MethodType, Preflight


class WandbIntegration(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


class Integration(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    wandb: WandbIntegration | None = None


class CreateFineTuningJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: JobHyperparameters | None = None
    method: Method | None = None
    suffix: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=2147483647)] | None = None
    integrations: list[Integration] | None = None
    metadata: dict[str, str] | None = None
    # tuneforge's extension (the SDK's `extra_body`): which weights train; auto as `tuneforge train --tuning`
    tuning: Literal["auto", "lora", "full"] = "auto"


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    status: Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    integrations: list[dict[str, Any]] | None = None
    seed: int
    estimated_finish: int | None = None
    method: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningJobCheckpoint(BaseModel):
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float]
    step_number: int


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FineTuningJobPreflight(Preflight):
    """POST /v1/fine_tuning/jobs/preflight (a tuneforge extension): what a create with the same body would
    train and cost, before anything is queued. The resolved values are the job's own `Preflight`, named
    as the job's fields name them; the job's model and files lead, as in a FineTuningJob."""

    object: Literal["fine_tuning.job.preflight"] = "fine_tuning.job.preflight"
    model: str
    training_file: str
    validation_file: str | None = None
    method: MethodType

"""Wire models for the legacy /v1/fine-tunes API (2024-01 spec: FineTune, FineTuneEvent)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.protocol.files import FileObject


class CreateFineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI ignores unknown fields; so do we

    training_file: str
    validation_file: str | None = None
    model: str | None = None  # legacy default: the smallest model ("ada" there; our built-in "tiny")
    n_epochs: Annotated[int, Field(ge=1, le=50)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=256)] | None = None
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=100)] | None = None
    prompt_loss_weight: Annotated[float, Field(ge=0, le=1)] | None = None
    compute_classification_metrics: bool | None = None
    classification_n_classes: Annotated[int, Field(ge=2)] | None = None
    classification_positive_class: str | None = None
    classification_betas: list[Annotated[float, Field(gt=0)]] | None = None
    suffix: Annotated[str, Field(max_length=40)] | None = None


class FineTuneEvent(BaseModel):
    object: Literal["fine-tune-event"] = "fine-tune-event"
    created_at: int
    level: str
    message: str


class FineTune(BaseModel):
    id: str
    object: Literal["fine-tune"] = "fine-tune"
    created_at: int
    updated_at: int
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    hyperparams: dict[str, Any]
    training_files: list[FileObject]
    validation_files: list[FileObject]
    result_files: list[FileObject]
    events: list[FineTuneEvent] | None = None


class FineTuneList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTune]


class FineTuneEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuneEvent]

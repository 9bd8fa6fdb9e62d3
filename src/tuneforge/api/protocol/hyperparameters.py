"""Hyperparameters as both fine-tuning APIs accept them: a number, or "auto" (also spelt null)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]
EpochsValue = Annotated[int, Field(ge=1, le=50)] | Auto
BatchValue = Annotated[int, Field(ge=1, le=256)] | Auto
LrValue = Annotated[float, Field(gt=0, le=100)] | Auto


class JobHyperparameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    n_epochs: EpochsValue | None = "auto"
    batch_size: BatchValue | None = "auto"
    learning_rate_multiplier: LrValue | None = "auto"


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hyperparameters: JobHyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethod | None = None

"""Hyperparameters and methods as the jobs API takes them. The hyperparameter fields themselves are the
job spec's (`tuneforge.spec`), so a hyperparameter declared there is accepted here too."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from tuneforge.graders.models import Grader
from tuneforge.spec import DpoHyperparameters, ReinforcementHyperparameters, SupervisedHyperparameters


class JobHyperparameters(SupervisedHyperparameters):
    model_config = ConfigDict(frozen=True, extra="ignore")


class JobDpoHyperparameters(DpoHyperparameters):
    model_config = ConfigDict(frozen=True, extra="ignore")


class JobReinforcementHyperparameters(ReinforcementHyperparameters):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hyperparameters: JobHyperparameters | None = None


class DpoMethod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hyperparameters: JobDpoHyperparameters | None = None


class ReinforcementMethod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grader: Grader
    hyperparameters: JobReinforcementHyperparameters | None = None


class Method(BaseModel):
    """OpenAI's shape: the type, and that type's settings under a key of the same name."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["supervised", "dpo", "reinforcement"] = "supervised"
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None

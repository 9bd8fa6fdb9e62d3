"""Wire models for /v1/models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # tuneforge's own: False for a base model that cannot load here (a hub id with no cache and no
    # reachable hub); `unavailable_reason` then says what to set.
    available: bool = True
    unavailable_reason: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True

"""Wire models for /v1/fine_tuning/checkpoints/{checkpoint}/permissions (OpenAI's checkpoint.permission)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CreatePermissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_ids: list[str] = Field(min_length=1)


class Permission(BaseModel):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    created_at: int
    project_id: str


class PermissionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Permission]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class PermissionDeleted(BaseModel):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    deleted: bool = True

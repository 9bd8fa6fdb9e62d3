"""Wire models for /v1/uploads (OpenAI's Upload and UploadPart)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.protocol.files import FileObject


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `expires_after` and whatever OpenAI adds next

    filename: str = Field(min_length=1)
    purpose: str
    bytes: int = Field(gt=0)
    mime_type: str


class CompleteUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_ids: list[str]
    md5: str | None = None


class Upload(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    expires_at: int
    file: FileObject | None = None


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str

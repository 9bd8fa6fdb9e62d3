"""Tables for files (and the multi-part uploads that build them), fine-tuning jobs (legacy fine-tunes too),
their events and checkpoints, fine-tuned models and who they are shared with, and batches. Every row
carries its owner (organisation)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JobStatus = Literal[
    "validating_files",  # files are being checked (jobs leave this state before they are stored)
    "queued",  # waiting for a worker
    "running",  # claimed by a worker whose heartbeat is fresh
    "paused",  # stopped on request at a resume state; `resume` queues it again
    "succeeded",  # model registered and results attached
    "failed",  # gave up: `error` says why and what to fix
    "cancelled",  # stopped on request
]
LIVE_STATUSES: tuple[JobStatus, ...] = ("validating_files", "queued", "running", "paused")
FINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")

UploadStatus = Literal[
    "pending",  # accepting parts
    "completed",  # its parts became the File in `file_id` (and were deleted)
    "cancelled",  # stopped on request; its parts were deleted
    "expired",  # not completed within the hour; its parts were deleted
]

BatchStatus = Literal[
    "validating",  # accepted (its input file was checked on upload), waiting for a worker
    "in_progress",  # a worker is sending its requests through the engine
    "finalizing",  # every request answered; the output and error files are being written
    "completed",  # output and error files attached
    "failed",  # could not run at all: `errors` says why
    "expired",  # its completion window ran out; what finished is in the output file
    "cancelling",  # cancel requested; the worker stops sending and writes what finished
    "cancelled",  # stopped on request
]
BATCH_LIVE_STATUSES: tuple[BatchStatus, ...] = ("validating", "in_progress", "finalizing", "cancelling")

JobApi = Literal["fine-tunes", "fine_tuning.jobs"]  # which OpenAI API created the job (and shows it)


class Base(DeclarativeBase):
    """Declarative base of every tuneforge table."""


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(Text)  # a label only; never becomes a path
    purpose: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), default="processed")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)  # creation order (FIFO within a priority)
    api: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(Text)
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # as requested ("auto" kept)
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # as the recipe chose
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the job's TrainSpec
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    integrations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The user's key-value tags ("metadata" in the API; the attribute name is taken by SQLAlchemy).
    job_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    fine_tuned_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The name the job's model will get, chosen at create time so that no two jobs share one (legacy
    # fine-tunes: the format's timestamp alone repeats within a second); shown only once it succeeds.
    model_name: Mapped[str | None] = mapped_column(Text, nullable=True, unique=True, index=True)
    result_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(nullable=True)
    run_after: Mapped[float | None] = mapped_column(nullable=True)  # a retry waits until then (backoff)

    __table_args__ = (Index("ix_jobs_queue", "status", "priority", "seq"),)


class EventRow(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))  # "message" or "metrics"
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    step: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    model_name: Mapped[str] = mapped_column(Text, unique=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(Text)  # blob key of the checkpoint's model directory


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the fine-tuned model name
    owner: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)  # blob key of the model directory
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)  # the organisation the key acts for
    name: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256; the key itself is never kept
    hint: Mapped[str] = mapped_column(String(16))  # the key's last characters, to tell keys apart in lists
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class UploadRow(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(Text)  # a label only, as a File's
    purpose: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)  # what the parts must add up to
    mime_type: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class UploadPartRow(Base):
    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class CheckpointPermissionRow(Base):
    """A fine-tuned model or checkpoint (`model_name`) that its owner shares with organisation
    `project_id` (OpenAI's projects are our organisations)."""

    __tablename__ = "checkpoint_permissions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    project_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("model_name", "project_id", name="uq_checkpoint_permission"),)


class BatchRow(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)  # creation order (FIFO)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    output_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    errors: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    batch_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    in_progress_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finalizing_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelling_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(nullable=True)

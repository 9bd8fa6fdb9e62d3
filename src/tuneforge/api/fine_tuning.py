"""Creating fine-tunes: the checks both APIs share (files, model, hyperparameters), then a queued job
with a first event. Everything a job needs is validated here, so bad input fails at create time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tuneforge import catalog, ids
from tuneforge.errors import InvalidRequest, NotFound, RateLimited
from tuneforge.settings import Settings
from tuneforge.store import events as event_store
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.tables import JobApi, JobRow

DEFAULT_LEGACY_MODEL = "tiny"  # OpenAI defaulted to its smallest model; ours is the built-in


@dataclass(frozen=True)
class NewJob:
    api: JobApi
    model: str
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int | None
    integrations: list[dict[str, Any]]
    metadata: dict[str, str] | None = None


def create_job(session: Session, settings: Settings, owner: str, new: NewJob) -> JobRow:
    _check_file(session, owner, new.training_file, "training_file")
    if new.validation_file:
        _check_file(session, owner, new.validation_file, "validation_file")
    _check_model(session, settings, owner, new.model)
    _check_suffix(new.suffix)
    _check_metadata(new.metadata)
    _check_classification(new.hyperparameters, new.validation_file)
    _check_live_jobs(session, settings, owner)
    job_id = ids.new_id("ft" if new.api == "fine-tunes" else "ftjob")
    row = job_store.add_job(
        session,
        id=job_id,
        api=new.api,
        owner=owner,
        model=new.model,
        training_file=new.training_file,
        validation_file=new.validation_file,
        hyperparameters=new.hyperparameters,
        suffix=new.suffix,
        seed=new.seed if new.seed is not None else random.randrange(2**31),
        integrations=new.integrations,
        job_metadata=new.metadata,
        status="queued",
    )
    session.flush()
    event_store.add_event(session, job_id, f"Created fine-tuning job: {job_id}")
    position = job_store.queue_position(session, row)
    event_store.add_event(session, job_id, f"Job enqueued. Queue position: {position}")
    return row


MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512  # OpenAI's limits


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key '{key[:20]}...' is longer than {MAX_METADATA_KEY} characters", param="metadata"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata['{key}'] is longer than {MAX_METADATA_VALUE} characters", param="metadata"
            )


def _check_file(session: Session, owner: str, file_id: str, param: str) -> None:
    try:
        row = file_store.get_file(session, owner=owner, file_id=file_id, param=param)
    except NotFound as exc:
        raise InvalidRequest(f"{param} '{file_id}' does not exist; upload it first", param=param) from exc
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"File {file_id} has purpose '{row.purpose}'; upload it with purpose 'fine-tune'", param=param
        )


def _check_model(session: Session, settings: Settings, owner: str, model: str) -> None:
    if model_store.find_model(session, owner=owner, name=model) is not None:
        return  # continued training from a fine-tuned model
    if model_store.find_checkpoint(session, owner=owner, name=model) is not None:
        return
    try:
        catalog.resolve_loadable(model, settings)
    except NotFound as exc:
        raise InvalidRequest(exc.message, param="model", code="model_not_found") from exc


def _check_live_jobs(session: Session, settings: Settings, owner: str) -> None:
    live = job_store.count_live(session, owner=owner)
    if live >= settings.max_live_jobs_per_org:
        raise RateLimited(
            f"Your organisation has {live} fine-tunes queued or running, the most allowed at once "
            f"({settings.max_live_jobs_per_org}). Wait for one to finish or cancel one.",
            retry_after_s=60,
        )


def _check_suffix(suffix: str | None) -> None:
    if suffix is not None and not ids.is_valid_suffix(suffix):
        raise InvalidRequest(
            "suffix may hold only letters, digits, '-', '_' and '.' (at most 40 characters)", param="suffix"
        )


def _check_classification(params: dict[str, Any], validation_file: str | None) -> None:
    if not params.get("compute_classification_metrics"):
        return
    if not validation_file:
        raise InvalidRequest(
            "compute_classification_metrics needs a validation_file to compute the metrics on",
            param="validation_file",
        )
    n_classes = params.get("classification_n_classes")
    positive = params.get("classification_positive_class")
    if n_classes is None and positive is None:
        raise InvalidRequest(
            "Set classification_n_classes (multiclass) or classification_positive_class (binary) "
            "with compute_classification_metrics",
            param="classification_n_classes",
        )
    if positive is not None and n_classes not in (None, 2):
        raise InvalidRequest(
            "classification_positive_class is for binary tasks; classification_n_classes must be 2",
            param="classification_positive_class",
        )

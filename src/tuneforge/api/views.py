"""Rows to wire objects: how stored files, jobs, events and models look to OpenAI's clients."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneforge.api.protocol.files import FileObject
from tuneforge.api.protocol.fine_tunes import FineTune, FineTuneEvent
from tuneforge.api.protocol.jobs import FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent, JobError
from tuneforge.spec import ReinforcementHyperparameters, ReinforcementMethod, TrainSpec
from tuneforge.store import events as event_store
from tuneforge.store.tables import CheckpointRow, EventRow, FileRow, JobRow

# The legacy API has no `validating_files`/`queued`/`paused`; they read as `pending` there.
_LEGACY_STATUS = {"validating_files": "pending", "queued": "pending", "paused": "pending"}
_JOB_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def file_object(row: FileRow) -> FileObject:
    return FileObject(
        id=row.id,
        bytes=row.bytes,
        created_at=row.created_at,
        filename=row.filename,
        purpose=row.purpose,
        status="processed",
    )


def _files(session: Session, owner: str, file_ids: list[str]) -> list[FileObject]:
    rows = [session.get(FileRow, file_id) for file_id in file_ids]
    return [file_object(row) for row in rows if row is not None and row.owner == owner]


def hyperparameters(row: JobRow) -> dict[str, object]:
    """The method's hyperparameters: the resolved value once the recipe has chosen it, the requested one
    ("auto" included) before."""
    spec = job_spec(row)
    resolved = row.resolved or {}
    asked = spec.hyperparameters.model_dump()
    return {key: resolved.get(key, value) for key, value in asked.items()}


def job_spec(row: JobRow) -> TrainSpec:
    return TrainSpec.model_validate(row.spec)


def _legacy_hyperparams(row: JobRow) -> dict[str, object]:
    """The legacy API's `hyperparams`: the method's values plus the classification options."""
    classification = job_spec(row).classification
    return {
        **hyperparameters(row),
        "compute_classification_metrics": classification is not None,
        "classification_n_classes": classification.n_classes if classification else None,
        "classification_positive_class": classification.positive_class if classification else None,
        "classification_betas": list(classification.betas) if classification else None,
    }


def fine_tune(session: Session, row: JobRow, *, with_events: bool = True) -> FineTune:
    validation = [row.validation_file] if row.validation_file else []
    return FineTune(
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        model=row.model,
        fine_tuned_model=row.fine_tuned_model,
        organization_id=row.owner,
        status=_LEGACY_STATUS.get(row.status, row.status),  # type: ignore[arg-type]
        hyperparams=_legacy_hyperparams(row),
        training_files=_files(session, row.owner, [row.training_file]),
        validation_files=_files(session, row.owner, validation),
        result_files=_files(session, row.owner, list(row.result_files)),
        events=[legacy_event(e) for e in event_store.list_events(session, row.id) if e.type == "message"]
        if with_events
        else None,
    )


def legacy_event(row: EventRow) -> FineTuneEvent:
    return FineTuneEvent(created_at=row.created_at, level=row.level, message=row.message)


def job(row: JobRow) -> FineTuningJob:
    values = hyperparameters(row)
    params = {key: values.get(key, "auto") for key in _JOB_HYPERPARAMETERS}
    spec = job_spec(row)
    method = spec.method.type
    block: dict[str, object] = {"hyperparameters": _method_hyperparameters(method, values)}
    if isinstance(spec.method, ReinforcementMethod):
        block["grader"] = spec.method.grader
    return FineTuningJob(
        id=row.id,
        created_at=row.created_at,
        error=JobError(**row.error) if row.error else None,
        fine_tuned_model=row.fine_tuned_model,
        finished_at=row.finished_at,
        hyperparameters=params,
        model=row.model,
        organization_id=row.owner,
        result_files=list(row.result_files),
        status=row.status,  # type: ignore[arg-type]
        trained_tokens=row.trained_tokens,
        training_file=row.training_file,
        validation_file=row.validation_file,
        integrations=list(row.integrations) or None,
        seed=row.seed,
        estimated_finish=row.estimated_finish,
        method={"type": method, method: block},
        metadata=row.job_metadata,
    )


def _method_hyperparameters(method: str, values: dict[str, object]) -> dict[str, object]:
    """OpenAI's method block: a DPO job shows `beta` too, a reinforcement job its own set;
    prompt_loss_weight is the legacy API's."""
    shown: tuple[str, ...] = (*_JOB_HYPERPARAMETERS, "beta") if method == "dpo" else _JOB_HYPERPARAMETERS
    if method == "reinforcement":
        shown = tuple(ReinforcementHyperparameters.model_fields)
    return {key: values.get(key, "auto") for key in shown}


def job_event(row: EventRow) -> FineTuningJobEvent:
    level = "warn" if row.level == "warning" else row.level
    return FineTuningJobEvent(
        id=row.id,
        created_at=row.created_at,
        level=level,  # type: ignore[arg-type]
        message=row.message,
        type=row.type,  # type: ignore[arg-type]
        data=row.data,
    )


def checkpoint(row: CheckpointRow) -> FineTuningJobCheckpoint:
    metrics = {k: float(v) for k, v in row.metrics.items() if isinstance(v, int | float)}
    return FineTuningJobCheckpoint(
        id=row.id,
        created_at=row.created_at,
        fine_tuned_model_checkpoint=row.model_name,
        fine_tuning_job_id=row.job_id,
        metrics=metrics,
        step_number=row.step,
    )

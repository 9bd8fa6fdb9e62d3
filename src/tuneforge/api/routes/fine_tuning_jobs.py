"""/v1/fine_tuning/jobs: today's fine-tuning API (jobs, events newest first, checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from tuneforge.api import views
from tuneforge.api.deps import BlobsDep, DatabaseDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.api.fine_tuning import create_job
from tuneforge.api.preflight import checked_job
from tuneforge.api.protocol.hyperparameters import JobDpoHyperparameters, JobHyperparameters
from tuneforge.api.protocol.jobs import (
    CreateFineTuningJobRequest,
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEventList,
    FineTuningJobList,
    FineTuningJobPreflight,
)
from tuneforge.errors import InvalidRequest
from tuneforge.settings import Settings
from tuneforge.spec import (
    DpoHyperparameters,
    DpoMethod,
    ReinforcementHyperparameters,
    ReinforcementMethod,
    SupervisedHyperparameters,
    SupervisedMethod,
    TrainJob,
    TrainSpec,
)
from tuneforge.store import events as event_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.store.tables import JobRow

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning jobs"])

Limit = Annotated[int, Query(ge=1, le=100)]
INTEGRATION_TYPES = ("wandb", "mlflow")


@router.post("", response_model=FineTuningJob)
def create_fine_tuning_job(
    body: CreateFineTuningJobRequest, session: SessionDep, settings: SettingsDep, owner: OwnerDep
) -> FineTuningJob:
    row = create_job(
        session, settings, owner, api="fine_tuning.jobs", spec=_spec(body), metadata=body.metadata
    )
    return views.job(row)


@router.post("/preflight", response_model=FineTuningJobPreflight)
async def preflight_fine_tuning_job(
    body: CreateFineTuningJobRequest,
    request: Request,
    database: DatabaseDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    owner: OwnerDep,
) -> FineTuningJobPreflight:
    """A dry run of create (a tuneforge extension): the same body and the same errors; the answer is the
    resolved hyperparameters with their reasons, steps, tokens, and the time and memory to expect, measured
    on this machine. Nothing is queued."""
    spec = _spec(body)
    job = await run_in_threadpool(_checked_job, database, settings, blobs, owner, spec, body.metadata)
    result = await request.app.state.preflight.run(job)
    return FineTuningJobPreflight(
        **result.model_dump(),
        model=spec.model,
        training_file=spec.training_file,
        validation_file=spec.validation_file,
        method=spec.method.type,
    )


def _checked_job(
    database: Database,
    settings: Settings,
    blobs: BlobStore,
    owner: str,
    spec: TrainSpec,
    metadata: dict[str, str] | None,
) -> TrainJob:
    with database.session() as session:
        return checked_job(session, settings, blobs, owner, spec, metadata)


def _spec(body: CreateFineTuningJobRequest) -> TrainSpec:
    for integration in body.integrations or []:
        if integration.type not in INTEGRATION_TYPES:
            raise InvalidRequest(
                f"Unknown integration type '{integration.type}'; use one of {list(INTEGRATION_TYPES)}",
                param="integrations",
            )
    return TrainSpec(
        model=body.model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        method=_method(body),
        tuning=body.tuning,
        seed=body.seed,
        suffix=body.suffix,
        integrations=tuple(i.model_dump(exclude_none=True) for i in body.integrations or []),
    )


def _method(body: CreateFineTuningJobRequest) -> SupervisedMethod | DpoMethod | ReinforcementMethod:
    """`method.<type>.hyperparameters` supersedes the deprecated top-level `hyperparameters`."""
    if body.method and body.method.type == "reinforcement":
        settings = body.method.reinforcement
        if settings is None:
            raise InvalidRequest(
                "A reinforcement job needs method.reinforcement.grader", param="method.reinforcement.grader"
            )
        values = settings.hyperparameters.model_dump() if settings.hyperparameters else {}
        return ReinforcementMethod(
            hyperparameters=ReinforcementHyperparameters.model_validate(values),
            grader=settings.grader.model_dump(mode="json", exclude_none=True),
        )
    if body.method and body.method.type == "dpo":
        asked = body.method.dpo.hyperparameters if body.method.dpo else None
        return DpoMethod(
            hyperparameters=DpoHyperparameters.model_validate((asked or JobDpoHyperparameters()).model_dump())
        )
    chosen = body.hyperparameters or JobHyperparameters()
    if body.method and body.method.supervised and body.method.supervised.hyperparameters:
        chosen = body.method.supervised.hyperparameters
    return SupervisedMethod(hyperparameters=SupervisedHyperparameters.model_validate(chosen.model_dump()))


@router.get("", response_model=FineTuningJobList)
def list_fine_tuning_jobs(
    request: Request, session: SessionDep, owner: OwnerDep, after: str | None = None, limit: Limit = 20
) -> FineTuningJobList:
    rows, has_more = job_store.list_jobs(
        session,
        owner=owner,
        api="fine_tuning.jobs",
        after=after,
        limit=limit,
        metadata=_metadata_filter(request),
    )
    return FineTuningJobList(data=[views.job(row) for row in rows], has_more=has_more)


def _metadata_filter(request: Request) -> dict[str, str]:
    """The SDK's `list(metadata={"team": "search"})` arrives as the query `metadata[team]=search`."""
    pairs = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            pairs[name[len("metadata[") : -1]] = value
    return pairs


@router.get("/{job_id}", response_model=FineTuningJob)
def retrieve_fine_tuning_job(job_id: str, session: SessionDep, owner: OwnerDep) -> FineTuningJob:
    return views.job(job_store.get_job(session, owner=owner, job_id=job_id, api="fine_tuning.jobs"))


@router.post("/{job_id}/cancel", response_model=FineTuningJob)
def cancel_fine_tuning_job(job_id: str, session: SessionDep, owner: OwnerDep) -> FineTuningJob:
    return _change(session, owner, job_id, job_store.cancel, "Fine-tuning job cancelled")


@router.post("/{job_id}/pause", response_model=FineTuningJob)
def pause_fine_tuning_job(job_id: str, session: SessionDep, owner: OwnerDep) -> FineTuningJob:
    return _change(session, owner, job_id, job_store.pause, "Fine-tuning job paused")


@router.post("/{job_id}/resume", response_model=FineTuningJob)
def resume_fine_tuning_job(job_id: str, session: SessionDep, owner: OwnerDep) -> FineTuningJob:
    return _change(session, owner, job_id, job_store.resume, "Fine-tuning job resumed")


def _change(
    session: Session, owner: str, job_id: str, change: Callable[[Session, JobRow], None], event: str
) -> FineTuningJob:
    """A status change the store makes conditionally (it raises when the job is not in a fitting state),
    and the event that records it."""
    row = job_store.get_job(session, owner=owner, job_id=job_id, api="fine_tuning.jobs")
    change(session, row)
    event_store.add_event(session, row.id, event)
    return views.job(row)


@router.get("/{job_id}/events", response_model=FineTuningJobEventList)
def list_fine_tuning_events(
    job_id: str, session: SessionDep, owner: OwnerDep, after: str | None = None, limit: Limit = 20
) -> FineTuningJobEventList:
    job_store.get_job(session, owner=owner, job_id=job_id, api="fine_tuning.jobs")
    rows, has_more = event_store.list_events_newest_first(session, job_id, after=after, limit=limit)
    return FineTuningJobEventList(data=[views.job_event(row) for row in rows], has_more=has_more)


@router.get("/{job_id}/checkpoints", response_model=FineTuningJobCheckpointList)
def list_fine_tuning_checkpoints(
    job_id: str, session: SessionDep, owner: OwnerDep, after: str | None = None, limit: Limit = 10
) -> FineTuningJobCheckpointList:
    job_store.get_job(session, owner=owner, job_id=job_id, api="fine_tuning.jobs")
    rows = model_store.list_checkpoints(session, job_id=job_id, after=after, limit=limit + 1)
    data = [views.checkpoint(row) for row in rows[:limit]]
    return FineTuningJobCheckpointList(
        data=data,
        has_more=len(rows) > limit,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )

"""/v1/fine-tunes: the legacy API the openai 0.28 CLI speaks, events streamed as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tuneforge.api import views
from tuneforge.api.deps import DatabaseDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.api.fine_tuning import DEFAULT_LEGACY_MODEL, create_job
from tuneforge.api.protocol.fine_tunes import CreateFineTuneRequest, FineTune, FineTuneEventList, FineTuneList
from tuneforge.api.revocation import KeyWatch
from tuneforge.errors import Unauthorized
from tuneforge.spec import ClassificationOptions, SupervisedHyperparameters, SupervisedMethod, TrainSpec
from tuneforge.store import events as event_store
from tuneforge.store import jobs as job_store
from tuneforge.store.db import Database
from tuneforge.store.tables import FINAL_STATUSES

router = APIRouter(prefix="/v1/fine-tunes", tags=["fine-tunes (legacy)"])

_POLL_S = 0.5


@router.post("", response_model=FineTune)
def create_fine_tune(
    body: CreateFineTuneRequest, session: SessionDep, settings: SettingsDep, owner: OwnerDep
) -> FineTune:
    return views.fine_tune(session, create_job(session, settings, owner, api="fine-tunes", spec=_spec(body)))


def _spec(body: CreateFineTuneRequest) -> TrainSpec:
    hyperparameters = SupervisedHyperparameters.model_validate(
        body.model_dump(include={"n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight"})
    )
    classification = None
    if body.compute_classification_metrics:
        classification = ClassificationOptions(
            n_classes=body.classification_n_classes,
            positive_class=body.classification_positive_class,
            betas=tuple(body.classification_betas or ()),
        )
    return TrainSpec(
        model=body.model or DEFAULT_LEGACY_MODEL,
        training_file=body.training_file,
        validation_file=body.validation_file,
        method=SupervisedMethod(hyperparameters=hyperparameters),
        classification=classification,
        suffix=body.suffix,
    )


@router.get("", response_model=FineTuneList)
def list_fine_tunes(session: SessionDep, owner: OwnerDep) -> FineTuneList:
    rows, _ = job_store.list_jobs(session, owner=owner, api="fine-tunes")
    return FineTuneList(data=[views.fine_tune(session, row, with_events=False) for row in reversed(rows)])


@router.get("/{fine_tune_id}", response_model=FineTune)
def retrieve_fine_tune(fine_tune_id: str, session: SessionDep, owner: OwnerDep) -> FineTune:
    row = job_store.get_job(session, owner=owner, job_id=fine_tune_id, api="fine-tunes")
    return views.fine_tune(session, row)


@router.post("/{fine_tune_id}/cancel", response_model=FineTune)
def cancel_fine_tune(fine_tune_id: str, session: SessionDep, owner: OwnerDep) -> FineTune:
    row = job_store.get_job(session, owner=owner, job_id=fine_tune_id, api="fine-tunes")
    job_store.cancel(session, row)
    event_store.add_event(session, row.id, "Fine-tune cancelled")
    return views.fine_tune(session, row)


@router.get("/{fine_tune_id}/events", response_model=None)
def list_fine_tune_events(
    fine_tune_id: str,
    request: Request,
    database: DatabaseDep,
    owner: OwnerDep,
    stream: bool = False,
    include_metrics: bool = False,
) -> FineTuneEventList | StreamingResponse:
    """`include_metrics` (a tuneforge extension, off by default as OpenAI has no such events) adds the
    per-step rows ("Step 12: training_loss=…") that `tuneforge api fine_tunes.follow` draws its bar from."""
    types = ("message", "metrics") if include_metrics else ("message",)
    with database.session() as session:
        job_store.get_job(session, owner=owner, job_id=fine_tune_id, api="fine-tunes")
        rows = event_store.list_events(session, fine_tune_id)
    if not stream:
        return FineTuneEventList(data=[views.legacy_event(row) for row in rows if row.type in types])
    return StreamingResponse(
        _event_stream(database, fine_tune_id, request, types), media_type="text/event-stream"
    )


async def _event_stream(
    database: Database, job_id: str, request: Request, types: tuple[str, ...] = ("message",)
) -> AsyncIterator[str]:
    """Every event of `types` so far, then new ones as they come, until the job ends: `data: [DONE]`;
    a key revoked meanwhile ends it with an error event."""
    seen, watch = 0, KeyWatch(request)
    while True:
        try:
            await watch.check()
        except Unauthorized as exc:
            yield f"data: {json.dumps(exc.envelope())}\n\n"
            break
        rows, status = await run_in_threadpool(_events_after, database, job_id, seen)
        for row in rows:
            seen = row.seq
            if row.type in types:
                yield f"data: {views.legacy_event(row).model_dump_json()}\n\n"
        if status in FINAL_STATUSES and not rows:
            break
        if await request.is_disconnected():
            return
        if not rows:
            await asyncio.sleep(_POLL_S)
    yield "data: [DONE]\n\n"


def _events_after(database: Database, job_id: str, seen: int) -> tuple[list[event_store.EventRow], str]:
    with database.session() as session:
        rows = event_store.list_events(session, job_id, after_seq=seen)
        status = job_store.status_of(session, job_id)
    return rows, status

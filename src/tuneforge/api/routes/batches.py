"""/v1/batches: run a file of completions or chat requests (uploaded with purpose `batch`) through the
workers and the batched engine; create, retrieve, list, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from tuneforge.api.deps import OwnerDep, PageLimit, SessionDep
from tuneforge.api.protocol.batches import (
    Batch,
    BatchErrors,
    BatchList,
    BatchRequestCounts,
    CreateBatchRequest,
)
from tuneforge.data.batch_input import BATCH_URLS
from tuneforge.errors import InvalidRequest
from tuneforge.store import batches as batch_store
from tuneforge.store import files as file_store
from tuneforge.store import models as model_store
from tuneforge.store.tables import BatchRow

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post("", response_model=Batch)
def create_batch(body: CreateBatchRequest, session: SessionDep, owner: OwnerDep) -> Batch:
    if body.endpoint not in BATCH_URLS:
        raise InvalidRequest(f"endpoint must be one of {list(BATCH_URLS)}", param="endpoint")
    if body.completion_window not in batch_store.WINDOWS_S:
        raise InvalidRequest(
            f"completion_window must be one of {list(batch_store.WINDOWS_S)}", param="completion_window"
        )
    summary = _input_summary(session, owner, body)
    row = batch_store.add_batch(
        session,
        owner=owner,
        endpoint=body.endpoint,
        input_file_id=body.input_file_id,
        completion_window=body.completion_window,
        model=summary["models"][0] if len(summary["models"]) == 1 else None,
        total=summary["n_requests"],
        batch_metadata=body.metadata,
    )
    session.flush()
    return batch_object(row)


def _input_summary(session: Session, owner: str, body: CreateBatchRequest) -> dict[str, Any]:
    """The input file's upload summary, after checking it suits this batch: a batch file, every line for
    `endpoint`, and every model one the caller may use (else, as for completions, it does not exist)."""
    file = file_store.get_file(session, owner=owner, file_id=body.input_file_id, param="input_file_id")
    if file.purpose != "batch" or not file.summary:
        raise InvalidRequest(
            f"File {file.id} has purpose '{file.purpose}'; a batch's input file has purpose 'batch'",
            param="input_file_id",
        )
    other = [url for url in file.summary["urls"] if url != body.endpoint]
    if other:
        raise InvalidRequest(
            f"File {file.id} has requests for {other[0]}, but the batch's endpoint is {body.endpoint}; every "
            "line's url must equal the endpoint",
            param="endpoint",
        )
    for model in file.summary["models"]:
        if not model_store.may_use(session, owner=owner, name=model):
            raise InvalidRequest(
                f"The model '{model}' does not exist", param="input_file_id", code="model_not_found"
            )
    return file.summary


@router.get("/{batch_id}", response_model=Batch)
def retrieve_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> Batch:
    return batch_object(batch_store.get_batch(session, owner=owner, batch_id=batch_id))


@router.get("", response_model=BatchList)
def list_batches(
    session: SessionDep, owner: OwnerDep, after: str | None = None, limit: PageLimit = 20
) -> BatchList:
    rows, has_more = batch_store.list_batches(session, owner=owner, after=after, limit=limit)
    data = [batch_object(row) for row in rows]
    return BatchList(
        data=data,
        has_more=has_more,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


@router.post("/{batch_id}/cancel", response_model=Batch)
def cancel_batch(batch_id: str, session: SessionDep, owner: OwnerDep) -> Batch:
    row = batch_store.get_batch(session, owner=owner, batch_id=batch_id)
    if row.status not in ("validating", "in_progress", "cancelling"):
        raise InvalidRequest(
            f"Batch {batch_id} is {row.status}; only a live batch can be cancelled", param="batch_id"
        )
    batch_store.request_cancel(session, batch_id)
    session.refresh(row)
    return batch_object(row)


def batch_object(row: BatchRow) -> Batch:
    return Batch(
        id=row.id,
        endpoint=row.endpoint,
        model=row.model,
        errors=BatchErrors(data=row.errors) if row.errors else None,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,  # type: ignore[arg-type]
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        created_at=row.created_at,
        in_progress_at=row.in_progress_at,
        expires_at=row.expires_at,
        finalizing_at=row.finalizing_at,
        completed_at=row.completed_at,
        failed_at=row.failed_at,
        expired_at=row.expired_at,
        cancelling_at=row.cancelling_at,
        cancelled_at=row.cancelled_at,
        request_counts=BatchRequestCounts(total=row.total, completed=row.completed, failed=row.failed),
        metadata=row.batch_metadata,
    )

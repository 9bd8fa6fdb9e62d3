"""Repository functions for batches, including their queue: every status change is a conditional UPDATE,
so a worker finishing a batch and a client cancelling it never overwrite each other."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import NotFound
from tuneforge.store.tables import BATCH_LIVE_STATUSES, BatchRow

WINDOWS_S = {"24h": 24 * 3600}  # the completion windows OpenAI offers


def add_batch(session: Session, **fields: Any) -> BatchRow:
    now = ids.now()
    window = WINDOWS_S[fields["completion_window"]]
    row = BatchRow(
        id=ids.new_id("batch"), seq=time.time_ns(), created_at=now, expires_at=now + window,
        status="validating", completed=0, failed=0, **fields,
    )  # fmt: skip
    session.add(row)
    return row


def get_batch(session: Session, *, owner: str, batch_id: str) -> BatchRow:
    row = session.get(BatchRow, batch_id)
    if row is None or row.owner != owner:
        raise NotFound(f"No such Batch object: {batch_id}", param="batch_id")
    return row


def list_batches(
    session: Session, *, owner: str, after: str | None = None, limit: int = 20
) -> tuple[list[BatchRow], bool]:
    """Newest first; `after` is the id of the last batch of the previous page."""
    query = select(BatchRow).where(BatchRow.owner == owner)
    if after:
        anchor = session.scalars(select(BatchRow.seq).where(BatchRow.id == after)).first()
        if anchor is not None:
            query = query.where(BatchRow.seq < anchor)
    rows = list(session.scalars(query.order_by(BatchRow.seq.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def claim_next(session: Session, worker_id: str, *, skip_locked: bool) -> BatchRow | None:
    """Atomically move the oldest waiting batch to in_progress for `worker_id`."""
    candidate = select(BatchRow.id).where(BatchRow.status == "validating").order_by(BatchRow.seq).limit(1)
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    now = time.time()
    claimed = session.execute(
        update(BatchRow)
        .where(BatchRow.id == candidate.scalar_subquery(), BatchRow.status == "validating")
        .values(status="in_progress", worker_id=worker_id, heartbeat_at=now, in_progress_at=int(now))
        .returning(BatchRow.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    return session.get(BatchRow, claimed, populate_existing=True) if claimed else None


def transition(session: Session, batch_id: str, source: tuple[str, ...], target: str, **values: Any) -> bool:
    """Move the batch from one of `source` to `target`, stamping `<target>_at`; False if it was elsewhere."""
    result = session.execute(
        update(BatchRow)
        .where(BatchRow.id == batch_id, BatchRow.status.in_(source))
        .values(status=target, **{f"{target}_at": ids.now()}, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, batch_id: str) -> None:
    """A waiting batch is cancelled at once; a running one goes to cancelling and its worker ends it."""
    if not transition(session, batch_id, ("validating",), "cancelled"):
        transition(session, batch_id, ("in_progress",), "cancelling")


def record_progress(session: Session, batch_id: str, *, completed: int, failed: int) -> str | None:
    """Store the counts and beat; returns the batch's status now (the worker stops on `cancelling`)."""
    session.execute(
        update(BatchRow)
        .where(BatchRow.id == batch_id, BatchRow.status.in_(("in_progress", "cancelling")))
        .values(completed=completed, failed=failed, heartbeat_at=time.time())
        .execution_options(synchronize_session=False)
    )
    return session.scalars(select(BatchRow.status).where(BatchRow.id == batch_id)).first()


def expire_waiting(session: Session) -> list[str]:
    """Batches whose window ran out before any worker took them: expired, with nothing run."""
    query = select(BatchRow.id).where(BatchRow.status == "validating", BatchRow.expires_at <= ids.now())
    return [
        batch_id
        for batch_id in session.scalars(query)
        if transition(session, batch_id, ("validating",), "expired")
    ]


def requeue_stale(session: Session, *, older_than_s: float) -> list[str]:
    """Batches whose worker stopped beating go back to the queue. The next run on that worker's host keeps
    the answers its work folder holds and runs the rest; on another host it starts from the first line."""
    cutoff = time.time() - older_than_s
    query = select(BatchRow.id).where(BatchRow.status == "in_progress", BatchRow.heartbeat_at < cutoff)
    requeued = []
    for batch_id in session.scalars(query):
        result = session.execute(
            update(BatchRow)
            .where(BatchRow.id == batch_id, BatchRow.status == "in_progress", BatchRow.heartbeat_at < cutoff)
            .values(status="validating", worker_id=None, completed=0, failed=0)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            requeued.append(batch_id)
    return requeued


def requeue(session: Session, batch_id: str, worker_id: str) -> bool:
    """A worker that stops mid-batch hands it back; its next run keeps what was answered (see
    `requeue_stale`)."""
    result = session.execute(
        update(BatchRow)
        .where(BatchRow.id == batch_id, BatchRow.worker_id == worker_id, BatchRow.status == "in_progress")
        .values(status="validating", worker_id=None, completed=0, failed=0)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def batches_using_file(session: Session, file_id: str) -> list[str]:
    """Live batches that read `file_id` (their input file must outlive them)."""
    query = select(BatchRow.id).where(
        BatchRow.input_file_id == file_id, BatchRow.status.in_(BATCH_LIVE_STATUSES)
    )
    return list(session.scalars(query))

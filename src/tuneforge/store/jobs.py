"""Repository functions for fine-tuning jobs, including the queue: every state change is a conditional
UPDATE (`WHERE id = … AND status IN (…)`), so concurrent workers and API calls never overwrite each
other. Claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL and one UPDATE … RETURNING on SQLite."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import Conflict, InvalidRequest, NotFound
from tuneforge.store.tables import FINAL_STATUSES, LIVE_STATUSES, JobApi, JobRow, ModelRow


def add_job(session: Session, **fields: Any) -> JobRow:
    now = ids.now()
    row = JobRow(seq=time.time_ns(), created_at=now, updated_at=now, attempts=0, **fields)
    session.add(row)
    return row


def add_named_job(session: Session, names: Iterable[str], **fields: Any) -> JobRow:
    """`add_job`, with the first of `names` that no model and no other job holds as the name its model gets
    on success. A concurrent create that took the same name meanwhile trips the unique index: move on."""
    for name in names:
        if _name_taken(session, name):
            continue
        try:
            with session.begin_nested():  # flushed here, so a clash is caught here, not at commit
                return add_job(session, model_name=name, **fields)
        except IntegrityError:
            if not _name_taken(session, name):
                raise  # not the name: nothing to move on from
    raise Conflict("No free name is left for this fine-tune's model", param="suffix")


def _name_taken(session: Session, name: str) -> bool:
    if session.get(ModelRow, name) is not None:  # deleted models keep their names
        return True
    return session.scalar(select(exists().where(JobRow.model_name == name))) is True


def get_job(session: Session, *, owner: str, job_id: str, api: JobApi | None = None) -> JobRow:
    row = session.get(JobRow, job_id)
    if row is None or row.owner != owner or (api is not None and row.api != api):
        kind = "fine-tune" if api == "fine-tunes" else "fine-tuning job"
        raise NotFound(
            f"No {kind} with id '{job_id}'", param="fine_tune_id" if api == "fine-tunes" else "job_id"
        )
    return row


def list_jobs(
    session: Session,
    *,
    owner: str,
    api: JobApi,
    after: str | None = None,
    limit: int | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[list[JobRow], bool]:
    """Newest first; `after` is the id of the last job of the previous page. `metadata` keeps the jobs
    tagged with every one of those pairs."""
    mine = (JobRow.owner == owner, JobRow.api == api)
    query = select(JobRow).where(*mine)
    if after:  # another organisation's id pages exactly as an unknown one, so it tells nothing
        anchor = session.scalars(select(JobRow.seq).where(JobRow.id == after, *mine)).first()
        if anchor is not None:
            query = query.where(JobRow.seq < anchor)
    for key, value in (metadata or {}).items():
        query = query.where(_tagged(session, key, value))
    query = query.order_by(JobRow.seq.desc())
    if limit is None:
        return list(session.scalars(query)), False
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def finished_jobs(session: Session, *, owners: Sequence[str] | None) -> list[JobRow]:
    """Jobs in a final status, oldest first, of `owners` (None: every organisation)."""
    query = select(JobRow).where(JobRow.status.in_(FINAL_STATUSES))
    if owners is not None:
        query = query.where(JobRow.owner.in_(owners))
    return list(session.scalars(query.order_by(JobRow.seq)))


def _tagged(session: Session, key: str, value: str) -> ColumnElement[bool]:
    """The job's metadata holds `key: value`. The pairs are read with the database's own JSON table
    function (json_each on SQLite, json_each_text on PostgreSQL), which decodes every key as stored; a
    JSON path would need quoting rules for keys with quotes, backslashes or non-ASCII characters."""
    each_pair = func.json_each if session.get_bind().dialect.name == "sqlite" else func.json_each_text
    pairs = each_pair(JobRow.job_metadata).table_valued("key", "value")
    return exists(select(1).select_from(pairs).where(pairs.c.key == key, pairs.c.value == value))


def jobs_using_file(session: Session, file_id: str) -> list[str]:
    query = select(JobRow.id).where(
        JobRow.status.in_(LIVE_STATUSES),
        (JobRow.training_file == file_id) | (JobRow.validation_file == file_id),
    )
    return list(session.scalars(query))


def transition(
    session: Session,
    job_id: str,
    *,
    from_statuses: Sequence[str],
    worker_id: str | None = None,
    **values: Any,
) -> bool:
    """Set `values` on the job if it is still in one of `from_statuses` (and held by `worker_id`)."""
    query = update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(from_statuses))
    if worker_id is not None:
        query = query.where(JobRow.worker_id == worker_id)
    result = session.execute(
        query.values(updated_at=ids.now(), **values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel(session: Session, row: JobRow) -> None:
    """Cancel a queued or running job; a running job's worker sees it at its next heartbeat."""
    if not transition(
        session, row.id, from_statuses=LIVE_STATUSES, status="cancelled", finished_at=ids.now()
    ):
        session.refresh(row)
        raise Conflict(
            f"Job {row.id} has already {row.status}; only queued, running or paused jobs can be cancelled"
        )
    session.refresh(row)


def pause(session: Session, row: JobRow) -> None:
    """Pause a queued or running job; a running job's worker sees it at its next heartbeat and stops its
    trainer, which saves a resume state first. The attempt it was on is not counted against the job."""
    refund: dict[str, Any] = {"attempts": JobRow.attempts - 1} if row.status == "running" else {}
    if not transition(session, row.id, from_statuses=("queued", "running"), status="paused", **refund):
        session.refresh(row)
        raise InvalidRequest(
            f"Job {row.id} is {row.status}; only queued or running jobs can be paused",
            param="fine_tuning_job_id",
        )
    session.refresh(row)


def resume(session: Session, row: JobRow) -> None:
    """Queue a paused job again; it continues from its latest resume state."""
    if not transition(session, row.id, from_statuses=("paused",), status="queued", worker_id=None):
        session.refresh(row)
        raise InvalidRequest(
            f"Job {row.id} is {row.status}; only paused jobs can be resumed", param="fine_tuning_job_id"
        )
    session.refresh(row)


def next_retry_at(session: Session) -> float | None:
    """When the earliest queued job held back by a retry backoff may run; None when none waits."""
    return session.scalar(
        select(func.min(JobRow.run_after)).where(JobRow.status == "queued", JobRow.run_after.is_not(None))
    )


def claim_next(session: Session, worker_id: str, *, skip_locked: bool) -> JobRow | None:
    """Atomically move the next queued job (highest priority, then oldest) to running for `worker_id`."""
    now = time.time()
    candidate = (
        select(JobRow.id)
        .where(JobRow.status == "queued", (JobRow.run_after.is_(None)) | (JobRow.run_after <= now))
        .order_by(JobRow.priority.desc(), JobRow.seq)
        .limit(1)
    )
    if skip_locked:
        candidate = candidate.with_for_update(skip_locked=True)
    claimed = session.execute(
        update(JobRow)
        .where(JobRow.id == candidate.scalar_subquery(), JobRow.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            heartbeat_at=now,
            attempts=JobRow.attempts + 1,
            updated_at=int(now),
        )
        .returning(JobRow.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    return session.get(JobRow, claimed, populate_existing=True) if claimed else None


def heartbeat(session: Session, job_id: str, worker_id: str) -> bool:
    """Refresh the heartbeat; False when the job is no longer ours to run (cancelled or taken over)."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.worker_id == worker_id, JobRow.status == "running")
        .values(heartbeat_at=time.time())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def stale_running(session: Session, *, older_than_s: float) -> list[JobRow]:
    cutoff = time.time() - older_than_s
    query = select(JobRow).where(JobRow.status == "running", JobRow.heartbeat_at < cutoff)
    return list(session.scalars(query))


def queue_position(session: Session, row: JobRow) -> int:
    """1-based position among queued jobs in claim order."""
    ahead = session.scalar(
        select(func.count()).where(
            JobRow.status == "queued",
            (JobRow.priority > row.priority) | ((JobRow.priority == row.priority) & (JobRow.seq < row.seq)),
        )
    )
    return int(ahead or 0) + 1


def status_of(session: Session, job_id: str) -> str:
    status = session.scalar(select(JobRow.status).where(JobRow.id == job_id))
    if status is None:
        raise NotFound(f"No job with id '{job_id}'", param="job_id")
    return str(status)


def requeue(
    session: Session,
    row: JobRow,
    *,
    expected_heartbeat: float | None,
    refund_attempt: bool,
    delay_s: float = 0.0,
) -> bool:
    """Put a running job back in the queue if its heartbeat is still `expected_heartbeat` (no one else
    has touched it since we looked). `refund_attempt` for stops that were not the job's fault; no worker
    claims it again for `delay_s` seconds."""
    query = update(JobRow).where(JobRow.id == row.id, JobRow.status == "running")
    if expected_heartbeat is not None:
        query = query.where(JobRow.heartbeat_at == expected_heartbeat)
    values: dict[str, Any] = {
        "status": "queued",
        "worker_id": None,
        "updated_at": ids.now(),
        "run_after": time.time() + delay_s if delay_s > 0 else None,
    }
    if refund_attempt:
        values["attempts"] = JobRow.attempts - 1
    result = session.execute(query.values(**values).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def count_live(session: Session, *, owner: str) -> int:
    query = select(func.count()).where(JobRow.owner == owner, JobRow.status.in_(LIVE_STATUSES))
    return int(session.scalar(query) or 0)


def count_live_for_create(session: Session, *, owner: str) -> int:
    """`count_live` for a create that inserts in this transaction if the count allows. On PostgreSQL a
    transaction-scoped advisory lock per organisation makes concurrent creates, from any API replica,
    count and insert one after another, so two cannot both see room for one more; it is released at
    commit. (The limit counts rows of this table: a counter kept elsewhere, Redis say, would have to
    follow every finish, cancel and recovery, and would drift whenever one was missed.)"""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"tuneforge-live-jobs:{owner}".encode(), digest_size=8).digest()
        lock_key = int.from_bytes(digest, "big", signed=True)  # advisory locks take a signed bigint
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
    return count_live(session, owner=owner)


def fail(session: Session, job_id: str, error: dict[str, Any], *, event: str) -> bool:
    """Fail a running job with `error` ({code, message, param}) and a final error event saying `event`."""
    from tuneforge.store.events import add_event

    failed = transition(
        session,
        job_id,
        from_statuses=("running",),
        status="failed",
        error=error,
        finished_at=ids.now(),
        worker_id=None,
    )
    if failed:
        add_event(session, job_id, event, level="error")
    return failed

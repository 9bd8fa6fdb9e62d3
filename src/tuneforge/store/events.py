"""Repository functions for job events: the log users follow, and the metrics behind the curves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.store.tables import EventRow

__all__ = ["EventRow", "add_event", "count_events", "list_events", "list_events_newest_first"]


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> EventRow:
    row = EventRow(
        id=ids.new_id("ftevent"),
        job_id=job_id,
        created_at=ids.now(),
        level=level,
        type=type,
        message=message,
        data=data,
    )
    session.add(row)
    return row


def list_events(
    session: Session, job_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[EventRow]:
    """Oldest first, from after `after_seq` (the legacy API's order; streaming follows `seq`)."""
    query = select(EventRow).where(EventRow.job_id == job_id, EventRow.seq > after_seq).order_by(EventRow.seq)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def list_events_newest_first(
    session: Session, job_id: str, *, after: str | None, limit: int
) -> tuple[list[EventRow], bool]:
    """The fine-tuning jobs API's order: newest first, paginated by the id of the last event seen."""
    query = select(EventRow).where(EventRow.job_id == job_id)
    if after:  # another job's event id (maybe another organisation's) pages exactly as an unknown one
        anchor = session.scalars(
            select(EventRow.seq).where(EventRow.id == after, EventRow.job_id == job_id)
        ).first()
        if anchor is not None:
            query = query.where(EventRow.seq < anchor)
    rows = list(session.scalars(query.order_by(EventRow.seq.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def count_events(session: Session, job_id: str) -> int:
    return int(session.scalar(select(func.count()).where(EventRow.job_id == job_id)) or 0)

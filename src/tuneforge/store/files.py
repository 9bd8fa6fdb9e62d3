"""Repository functions for uploaded and result files."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.errors import NotFound
from tuneforge.store.tables import FileRow


def add_file(session: Session, **fields: Any) -> FileRow:
    row = FileRow(**fields)
    session.add(row)
    return row


def get_file(session: Session, *, owner: str, file_id: str, param: str | None = None) -> FileRow:
    row = session.get(FileRow, file_id)
    if row is None or row.owner != owner:
        raise NotFound(f"No such File object: {file_id}", param=param or "file_id")
    return row


def list_files(
    session: Session, *, owner: str, purpose: str | None = None, after: str | None = None, limit: int = 10000
) -> list[FileRow]:
    """Newest first; `after` is the id of the last file of the previous page (a file that is not the
    owner's, or no longer exists, ends the listing)."""
    query = select(FileRow).where(FileRow.owner == owner)
    if purpose:
        query = query.where(FileRow.purpose == purpose)
    if after:
        anchor = session.get(FileRow, after)
        if anchor is None or anchor.owner != owner:
            return []
        query = query.where(
            (FileRow.created_at < anchor.created_at)
            | ((FileRow.created_at == anchor.created_at) & (FileRow.id > anchor.id))
        )
    return list(session.scalars(query.order_by(FileRow.created_at.desc(), FileRow.id).limit(limit)))


def delete_file(session: Session, row: FileRow) -> None:
    session.delete(row)

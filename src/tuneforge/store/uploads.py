"""Repository functions for multi-part uploads: the upload row, its parts (bytes in the blob store under
`uploads/<id>/<part id>`), and the conditional status changes that end one."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.store.blobs import BlobStore
from tuneforge.store.tables import UploadPartRow, UploadRow

EXPIRES_AFTER_S = 3600  # OpenAI's: an upload not completed within the hour expires


def part_key(upload_id: str, part_id: str) -> str:
    return f"uploads/{upload_id}/{part_id}"


def add_upload(
    session: Session, *, owner: str, filename: str, purpose: str, bytes: int, mime_type: str
) -> UploadRow:
    now = ids.now()
    row = UploadRow(
        id=ids.new_id("upload"),
        owner=owner,
        filename=filename,
        purpose=purpose,
        bytes=bytes,
        mime_type=mime_type,
        status="pending",
        created_at=now,
        expires_at=now + EXPIRES_AFTER_S,
    )
    session.add(row)
    return row


def get_upload(session: Session, *, owner: str, upload_id: str) -> UploadRow:
    row = session.get(UploadRow, upload_id)
    if row is None or row.owner != owner:
        raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
    return row


def ensure_pending(row: UploadRow) -> None:
    """Parts and completion need a pending upload; the error names its status."""
    if row.status != "pending":
        raise InvalidRequest(
            f"Upload {row.id} is {row.status}; only a pending upload takes parts or completes",
            param="upload_id",
            code="upload_not_pending",
        )


def add_part(session: Session, *, upload_id: str, part_id: str, size: int) -> UploadPartRow:
    row = UploadPartRow(id=part_id, upload_id=upload_id, bytes=size, created_at=ids.now())
    session.add(row)
    return row


def parts(session: Session, upload_id: str) -> dict[str, UploadPartRow]:
    query = select(UploadPartRow).where(UploadPartRow.upload_id == upload_id)
    return {row.id: row for row in session.scalars(query)}


def finish(session: Session, upload_id: str, status: str, *, file_id: str | None = None) -> bool:
    """Move a pending upload to `status`; False when it was no longer pending (someone else ended it)."""
    result = session.execute(
        update(UploadRow)
        .where(UploadRow.id == upload_id, UploadRow.status == "pending")
        .values(status=status, file_id=file_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def drop_parts(session: Session, blobs: BlobStore, upload_id: str) -> None:
    """Forget an ended upload's parts: rows and bytes."""
    session.execute(delete(UploadPartRow).where(UploadPartRow.upload_id == upload_id))
    blobs.delete(f"uploads/{upload_id}")


def expire_stale(session: Session, blobs: BlobStore, *, now: int | None = None) -> list[str]:
    """Expire pending uploads past their hour, leaving none of their parts behind; returns their ids."""
    cutoff = ids.now() if now is None else now
    query = select(UploadRow.id).where(UploadRow.status == "pending", UploadRow.expires_at <= cutoff)
    expired = [upload_id for upload_id in session.scalars(query) if finish(session, upload_id, "expired")]
    for upload_id in expired:
        drop_parts(session, blobs, upload_id)
    return expired

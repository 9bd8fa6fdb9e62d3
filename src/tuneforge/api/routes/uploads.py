"""/v1/uploads: a file too big for one request, sent in parts (each at most 64 MB, as OpenAI's) that
stream to the blob store; `complete` concatenates them, streaming, in `part_ids` order, checks `md5`, and
validates the result like any upload. A cancelled or expired upload keeps none of its parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.api import views
from tuneforge.api.deps import BlobsDep, DatabaseDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.api.protocol.uploads import CompleteUploadRequest, CreateUploadRequest, Upload, UploadPart
from tuneforge.api.routes.files import UPLOAD_PURPOSES, record_file, validate_stored
from tuneforge.errors import InvalidRequest
from tuneforge.store import uploads as upload_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.store.tables import FileRow, UploadRow

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

MAX_PART_BYTES = 64 * 1024 * 1024  # OpenAI's limit on one part


@router.post("", response_model=Upload)
def create_upload(
    body: CreateUploadRequest, session: SessionDep, owner: OwnerDep, settings: SettingsDep
) -> Upload:
    if body.purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(f"purpose must be one of {list(UPLOAD_PURPOSES)}", param="purpose")
    if body.bytes > settings.max_multipart_upload_bytes:
        raise InvalidRequest(
            f"bytes is {body.bytes}; an upload may hold at most {settings.max_multipart_upload_bytes}",
            param="bytes",
        )
    row = upload_store.add_upload(
        session,
        owner=owner,
        filename=body.filename,
        purpose=body.purpose,
        bytes=body.bytes,
        mime_type=body.mime_type,
    )
    session.flush()
    return _upload(session, row)


@router.post("/{upload_id}/parts", response_model=UploadPart)
async def add_upload_part(
    upload_id: str,
    database: DatabaseDep,
    blobs: BlobsDep,
    owner: OwnerDep,
    data: Annotated[UploadFile, File()],
) -> UploadPart:
    await run_in_threadpool(_pending, database, blobs, owner, upload_id)
    part_id = ids.new_id("part")
    key = upload_store.part_key(upload_id, part_id)
    size, _ = await run_in_threadpool(blobs.put_stream, key, data.file, max_bytes=MAX_PART_BYTES)
    with database.session() as session:
        row = upload_store.get_upload(session, owner=owner, upload_id=upload_id)
        if row.status != "pending":  # cancelled (or completed) while this part streamed in
            blobs.delete(key)
            upload_store.ensure_pending(row)
        part = upload_store.add_part(session, upload_id=upload_id, part_id=part_id, size=size)
        return UploadPart(id=part.id, created_at=part.created_at, upload_id=upload_id)


@router.post("/{upload_id}/complete", response_model=Upload)
async def complete_upload(
    upload_id: str,
    body: CompleteUploadRequest,
    database: DatabaseDep,
    blobs: BlobsDep,
    owner: OwnerDep,
    settings: SettingsDep,
) -> Upload:
    row = await run_in_threadpool(_pending, database, blobs, owner, upload_id)
    await run_in_threadpool(_check_parts, database, row, body.part_ids)
    file_id = ids.new_id("file")
    keys = [upload_store.part_key(upload_id, part_id) for part_id in body.part_ids]
    size, sha, md5 = await run_in_threadpool(blobs.concatenate, f"files/{file_id}", keys)
    if body.md5 is not None and body.md5.lower() != md5:
        blobs.delete(f"files/{file_id}")
        raise InvalidRequest(f"md5 {body.md5} does not match the uploaded bytes' md5 {md5}", param="md5")
    summary = await run_in_threadpool(validate_stored, blobs, settings, file_id, row.filename, row.purpose)
    await run_in_threadpool(
        record_file, database, owner, file_id, row.filename, row.purpose, size, sha, summary
    )
    return await run_in_threadpool(_finish, database, blobs, upload_id, file_id)


@router.post("/{upload_id}/cancel", response_model=Upload)
def cancel_upload(upload_id: str, session: SessionDep, blobs: BlobsDep, owner: OwnerDep) -> Upload:
    row = upload_store.get_upload(session, owner=owner, upload_id=upload_id)
    upload_store.expire_stale(session, blobs)
    session.refresh(row)
    upload_store.ensure_pending(row)
    if upload_store.finish(session, upload_id, "cancelled"):
        upload_store.drop_parts(session, blobs, upload_id)
    session.refresh(row)
    return _upload(session, row)


def _pending(database: Database, blobs: BlobStore, owner: str, upload_id: str) -> UploadRow:
    """The caller's upload, still pending; one past its hour is expired first (and so refused)."""
    with database.session() as session:
        row = upload_store.get_upload(session, owner=owner, upload_id=upload_id)
        upload_store.expire_stale(session, blobs)
        session.refresh(row)
        upload_store.ensure_pending(row)
        session.expunge(row)
        return row


def _check_parts(database: Database, row: UploadRow, part_ids: list[str]) -> None:
    with database.session() as session:
        known = upload_store.parts(session, row.id)
    for index, part_id in enumerate(part_ids):
        if part_id not in known:
            raise InvalidRequest(
                f"part_ids[{index}] '{part_id}' is not a part of upload {row.id}", param="part_ids"
            )
    if len(set(part_ids)) != len(part_ids):
        raise InvalidRequest("part_ids lists a part more than once", param="part_ids")
    total = sum(known[part_id].bytes for part_id in part_ids)
    if total != row.bytes:
        raise InvalidRequest(
            f"the parts hold {total} bytes but the upload was created with bytes={row.bytes}", param="bytes"
        )


def _finish(database: Database, blobs: BlobStore, upload_id: str, file_id: str) -> Upload:
    with database.session() as session:
        if upload_store.finish(session, upload_id, "completed", file_id=file_id):
            upload_store.drop_parts(session, blobs, upload_id)
            row = session.get(UploadRow, upload_id, populate_existing=True)
            assert row is not None
            return _upload(session, row)
        _discard_file(session, blobs, file_id)  # cancelled, expired or completed meanwhile: keep nothing
    with database.session() as session:
        row = session.get(UploadRow, upload_id)
        assert row is not None
        upload_store.ensure_pending(row)  # raises, naming the status it ended in
        raise AssertionError("unreachable: the upload was no longer pending")


def _discard_file(session: Session, blobs: BlobStore, file_id: str) -> None:
    file_row = session.get(FileRow, file_id)
    if file_row is not None:
        session.delete(file_row)
    blobs.delete(f"files/{file_id}")


def _upload(session: Session, row: UploadRow) -> Upload:
    file = None
    if row.file_id is not None:
        file_row = session.get(FileRow, row.file_id)
        file = views.file_object(file_row) if file_row is not None else None
    return Upload(
        id=row.id,
        bytes=row.bytes,
        created_at=row.created_at,
        filename=row.filename,
        purpose=row.purpose,
        status=row.status,  # type: ignore[arg-type]
        expires_at=row.expires_at,
        file=file,
    )

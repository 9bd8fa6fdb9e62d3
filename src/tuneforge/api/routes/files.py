"""/v1/files: upload (validated like training reads it, or as a batch's requests), list, retrieve, content,
delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from tuneforge import ids
from tuneforge.api import views
from tuneforge.api.deps import BlobsDep, DatabaseDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.api.protocol.files import FileDeleted, FileList, FileObject
from tuneforge.errors import Conflict, InvalidFile, InvalidRequest, TuneforgeError
from tuneforge.settings import Settings
from tuneforge.store import batches as batch_store
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database

router = APIRouter(prefix="/v1/files", tags=["files"])

UPLOAD_PURPOSES = ("fine-tune", "batch")  # what a client may upload; results are ours to write


@router.post("", response_model=FileObject)
async def upload_file(
    database: DatabaseDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    user_provided_filename: Annotated[str | None, Form()] = None,
) -> FileObject:
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(f"purpose must be one of {list(UPLOAD_PURPOSES)}", param="purpose")
    filename = user_provided_filename or file.filename or "upload.jsonl"
    file_id = ids.new_id("file")
    size, sha = await run_in_threadpool(
        blobs.put_stream, f"files/{file_id}", file.file, max_bytes=settings.max_upload_bytes
    )
    summary = await run_in_threadpool(validate_stored, blobs, settings, file_id, filename, purpose)
    try:  # the row is committed off the event loop: on SQLite a commit may wait for another writer
        return await run_in_threadpool(
            record_file, database, owner, file_id, filename, purpose, size, sha, summary
        )
    except BaseException:
        blobs.delete(f"files/{file_id}")  # a refused upload leaves nothing behind
        raise


def validate_stored(
    blobs: BlobStore, settings: Settings, file_id: str, filename: str, purpose: str
) -> dict[str, object]:
    """Validate the stored blob of a new file for its purpose (the Uploads API's completed files too); a
    refused file's blob is deleted, so it leaves nothing behind."""
    try:
        if purpose == "batch":
            from tuneforge.data.batch_input import validate_batch_input

            return validate_batch_input(blobs.local_path(f"files/{file_id}"), filename=filename)
        return _validate(blobs, file_id, filename, settings.max_examples_per_file)
    except TuneforgeError:
        blobs.delete(f"files/{file_id}")
        raise


def record_file(
    database: Database,
    owner: str,
    file_id: str,
    filename: str,
    purpose: str,
    size: int,
    sha: str,
    summary: dict[str, object] | None,
) -> FileObject:
    with database.session() as session:
        row = file_store.add_file(
            session,
            id=file_id,
            owner=owner,
            filename=filename,
            purpose=purpose,
            bytes=size,
            sha256=sha,
            created_at=ids.now(),
            status="processed",
            summary=summary,
        )
        return views.file_object(row)


def _validate(blobs: BlobStore, file_id: str, filename: str, max_examples: int) -> dict[str, object]:
    from tuneforge.data.validation import validate_upload

    summary = validate_upload(blobs.local_path(f"files/{file_id}"), filename=filename)
    if summary.n_examples > max_examples:
        raise InvalidFile(
            f"the file has {summary.n_examples} examples; the most one file may hold is {max_examples}",
            file=filename,
            field="file",
        )
    return summary.to_dict()


@router.get("", response_model=FileList)
def list_files(
    session: SessionDep,
    owner: OwnerDep,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,  # OpenAI's bounds for this list
) -> FileList:
    rows = file_store.list_files(session, owner=owner, purpose=purpose, after=after, limit=limit + 1)
    data = [views.file_object(row) for row in rows[:limit]]
    return FileList(
        data=data,
        has_more=len(rows) > limit,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, session: SessionDep, owner: OwnerDep) -> FileObject:
    return views.file_object(file_store.get_file(session, owner=owner, file_id=file_id))


@router.get("/{file_id}/content")
def file_content(file_id: str, session: SessionDep, owner: OwnerDep, blobs: BlobsDep) -> Response:
    row = file_store.get_file(session, owner=owner, file_id=file_id)
    media = "text/csv" if row.purpose == "fine-tune-results" else "application/octet-stream"
    return Response(blobs.read_bytes(f"files/{file_id}"), media_type=media)


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, session: SessionDep, owner: OwnerDep, blobs: BlobsDep) -> FileDeleted:
    row = file_store.get_file(session, owner=owner, file_id=file_id)
    users = job_store.jobs_using_file(session, file_id) + batch_store.batches_using_file(session, file_id)
    if users:
        raise Conflict(
            f"File {file_id} is in use by live job(s) or batch(es) {', '.join(users)}; cancel them first"
        )
    file_store.delete_file(session, row)
    session.flush()
    blobs.delete(f"files/{file_id}")
    return FileDeleted(id=file_id)

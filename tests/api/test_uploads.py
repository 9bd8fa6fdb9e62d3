"""The Uploads API through the SDK's own chunked upload: parts stream to the blob store, completion
concatenates them in `part_ids` order, checks `md5` and validates like any upload; a bad `md5`, a size
that does not add up, a cancelled or an expired upload leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tuneforge.settings import Settings
from tuneforge.store import uploads as upload_store
from tuneforge.store.tables import FileRow, UploadPartRow, UploadRow


def _blobs(settings: Settings, folder: str) -> list[Path]:
    root = settings.data_dir / "blobs" / folder
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _rows(app: FastAPI, table: type) -> list[object]:
    with app.state.database.session() as session:
        return list(session.query(table))


def test_a_chunked_upload_becomes_the_same_file(client: OpenAI, train_file: Path, settings: Settings) -> None:
    data = train_file.read_bytes()
    upload = client.uploads.upload_file_chunked(
        file=train_file, mime_type="text/jsonl", purpose="fine-tune", part_size=300,
        md5=hashlib.md5(data).hexdigest(),
    )  # fmt: skip
    assert upload.status == "completed" and upload.bytes == len(data) and upload.file is not None
    assert upload.file.filename == "train.jsonl" and upload.file.bytes == len(data)
    assert client.files.content(upload.file.id).read() == data
    assert client.files.retrieve(upload.file.id).purpose == "fine-tune"
    assert _blobs(settings, "uploads") == []  # the parts are gone once they became the file


def test_parts_are_joined_in_part_ids_order(client: OpenAI) -> None:
    lines = [json.dumps({"prompt": f"p{i} ->", "completion": f" c{i % 2}"}) + "\n" for i in range(6)]
    first, second = "".join(lines[:3]).encode(), "".join(lines[3:]).encode()
    upload = client.uploads.create(
        filename="joined.jsonl", purpose="fine-tune", bytes=len(first) + len(second), mime_type="text/jsonl"
    )
    part_b = client.uploads.parts.create(upload_id=upload.id, data=second)
    part_a = client.uploads.parts.create(upload_id=upload.id, data=first)
    done = client.uploads.complete(upload_id=upload.id, part_ids=[part_a.id, part_b.id])
    assert done.file is not None and client.files.content(done.file.id).read() == first + second


def test_a_wrong_md5_or_size_is_a_400_and_stores_no_file(
    client: OpenAI, app: FastAPI, train_file: Path, settings: Settings
) -> None:
    data = train_file.read_bytes()
    upload = client.uploads.create(
        filename="t.jsonl", purpose="fine-tune", bytes=len(data), mime_type="text/jsonl"
    )
    part = client.uploads.parts.create(upload_id=upload.id, data=data)
    with pytest.raises(openai.BadRequestError) as wrong_md5:
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id], md5="0" * 32)
    assert wrong_md5.value.body["param"] == "md5"  # type: ignore[index]
    short = client.uploads.create(filename="t.jsonl", purpose="fine-tune", bytes=len(data) + 1, mime_type="x")
    short_part = client.uploads.parts.create(upload_id=short.id, data=data)
    with pytest.raises(openai.BadRequestError) as wrong_size:
        client.uploads.complete(upload_id=short.id, part_ids=[short_part.id])
    assert wrong_size.value.body["param"] == "bytes"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as foreign:
        client.uploads.complete(upload_id=short.id, part_ids=[part.id])
    assert foreign.value.body["param"] == "part_ids"  # type: ignore[index]
    assert client.files.list().data == [] and _blobs(settings, "files") == []


def test_the_completed_file_is_validated_like_any_upload(client: OpenAI, settings: Settings) -> None:
    data = b'{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n'
    upload = client.uploads.create(filename="bad.jsonl", purpose="fine-tune", bytes=len(data), mime_type="x")
    part = client.uploads.parts.create(upload_id=upload.id, data=data)
    with pytest.raises(openai.BadRequestError, match="line 2"):
        client.uploads.complete(upload_id=upload.id, part_ids=[part.id])
    assert client.files.list().data == [] and _blobs(settings, "files") == []


def test_cancel_and_expiry_leave_no_parts_behind(client: OpenAI, app: FastAPI, settings: Settings) -> None:
    cancelled = client.uploads.create(filename="a.jsonl", purpose="fine-tune", bytes=10, mime_type="x")
    client.uploads.parts.create(upload_id=cancelled.id, data=b"12345")
    assert client.uploads.cancel(cancelled.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.parts.create(upload_id=cancelled.id, data=b"12345")

    stale = client.uploads.create(filename="b.jsonl", purpose="fine-tune", bytes=10, mime_type="x")
    client.uploads.parts.create(upload_id=stale.id, data=b"12345")
    with app.state.database.session() as session:
        expired = upload_store.expire_stale(session, app.state.blobs, now=stale.expires_at)
    assert expired == [stale.id]
    with pytest.raises(openai.BadRequestError, match="expired"):
        client.uploads.complete(upload_id=stale.id, part_ids=[])
    assert _blobs(settings, "uploads") == [] and _rows(app, UploadPartRow) == [] and _rows(app, FileRow) == []
    statuses = {row.id: row.status for row in _rows(app, UploadRow)}  # type: ignore[attr-defined]
    assert statuses == {cancelled.id: "cancelled", stale.id: "expired"}


def test_bad_create_parameters_are_400s_naming_them(client: OpenAI) -> None:
    for fields, param in (({"purpose": "assistants"}, "purpose"), ({"bytes": 0}, "bytes")):
        args = {"filename": "a.jsonl", "purpose": "fine-tune", "bytes": 10, "mime_type": "x", **fields}
        with pytest.raises(openai.BadRequestError) as error:
            client.uploads.create(**args)  # type: ignore[arg-type]
        assert error.value.body["param"] == param  # type: ignore[index]


def test_memory_stays_flat_for_a_file_many_parts_big(
    client: OpenAI, tmp_path: Path, train_file: Path
) -> None:
    """64 MB in 2 MB parts: the server holds a chunk at a time, never a part or the file (the SDK itself
    holds one part, and validation a fixed working set)."""
    path = tmp_path / "big.jsonl"
    line = json.dumps({"prompt": "x" * 2000 + " ->", "completion": " yes"}) + "\n"
    with path.open("w") as handle:
        handle.write(line * (64 * 1024 * 1024 // len(line)))
    size = path.stat().st_size
    client.uploads.upload_file_chunked(file=train_file, mime_type="text/jsonl", purpose="fine-tune")
    tracemalloc.start()  # after a first upload: the modules it imports are not what is measured
    try:
        upload = client.uploads.upload_file_chunked(
            file=path, mime_type="text/jsonl", purpose="fine-tune", part_size=2 * 1024 * 1024
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert upload.status == "completed" and upload.file is not None and upload.file.bytes == size
    # About 23 MB at any size, 17 of them validation's working set (the same for 4 MB as for 64 MB).
    assert peak < size / 2.5, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"

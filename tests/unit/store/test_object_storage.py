"""The blob store on a real S3 protocol server: uploads stream in parts, a refused upload keeps nothing,
model directories are published and read back through a local cache, deletes reach every copy."""

from __future__ import annotations

import io

import pytest

from tests.conftest import s3_objects, s3_settings
from tuneforge.errors import PayloadTooLarge
from tuneforge.settings import Settings
from tuneforge.store.blobs import open_blob_store

MIB = 1 << 20


class Generated(io.RawIOBase):
    """`size` bytes made as they are read: the whole upload never exists in this process at once."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(i % 251 for i in range(n))


def test_an_upload_streams_to_s3_in_parts_and_reads_back(
    settings: Settings, s3_endpoint: str, s3_bucket: str
) -> None:
    blobs = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket))

    size, sha = blobs.put_stream("files/file-big", Generated(20 * MIB))  # type: ignore[arg-type]

    assert size == 20 * MIB and s3_objects(s3_endpoint, s3_bucket) == {"tf/files/file-big": 20 * MIB}
    etag = blobs.fs.info(f"{s3_bucket}/tf/files/file-big")["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart upload of 8 MiB parts, not one 20 MiB request
    local = blobs.local_path("files/file-big")
    assert local.stat().st_size == 20 * MIB and not str(local).startswith(str(blobs.root))
    import hashlib

    assert hashlib.sha256(local.read_bytes()).hexdigest() == sha


def test_an_upload_over_the_limit_leaves_no_object(
    settings: Settings, s3_endpoint: str, s3_bucket: str
) -> None:
    blobs = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket))
    with pytest.raises(PayloadTooLarge):
        blobs.put_stream("files/file-x", Generated(3 * MIB), max_bytes=2 * MIB)  # type: ignore[arg-type]
    assert s3_objects(s3_endpoint, s3_bucket) == {}


def test_a_published_model_directory_is_read_through_the_cache_and_deleted_everywhere(
    settings: Settings, s3_endpoint: str, s3_bucket: str
) -> None:
    blobs = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket))
    work = blobs.workspace("jobs/ftjob-1")
    output = work / "output"
    (output / "checkpoints" / "step-1").mkdir(parents=True)
    (output / "config.json").write_text("{}")
    (output / "model.safetensors").write_bytes(b"w" * 1000)
    (output / ".trainer.lock").write_text("")
    (output / "checkpoints" / "step-1" / "config.json").write_text('{"step": 1}')

    assert blobs.publish(output / "checkpoints" / "step-1") == "jobs/ftjob-1/output/checkpoints/step-1"
    assert blobs.publish(output) == "jobs/ftjob-1/output"
    assert s3_objects(s3_endpoint, s3_bucket) == {
        "tf/jobs/ftjob-1/output/config.json": 2,
        "tf/jobs/ftjob-1/output/model.safetensors": 1000,
        "tf/jobs/ftjob-1/output/checkpoints/step-1/config.json": 11,
    }
    blobs.release("jobs/ftjob-1")
    assert not work.exists()

    # Another host (its own data dir) reads the model as a flat directory, its checkpoint apart.
    other = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket, data_dir=settings.data_dir / "b"))
    model = other.local_path("jobs/ftjob-1/output")
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]
    checkpoint = other.local_path("jobs/ftjob-1/output/checkpoints/step-1")
    assert (checkpoint / "config.json").read_text() == '{"step": 1}'

    other.delete("jobs/ftjob-1/output")
    assert s3_objects(s3_endpoint, s3_bucket) == {} and not model.exists()


def test_a_bucket_that_does_not_exist_is_named_at_start(settings: Settings, s3_endpoint: str) -> None:
    from tuneforge.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="s3://no-such-bucket/tf") as raised:
        open_blob_store(s3_settings(settings, s3_endpoint, "no-such-bucket"))
    assert raised.value.param == "TUNEFORGE_BLOB_URL"

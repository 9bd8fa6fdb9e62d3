"""On the S3 server: the resume keeper stores only the newest whole resume state, and a worker on
another host restores it; a half-sent one is never restored."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import s3_objects, s3_settings
from tuneforge.settings import Settings
from tuneforge.store.blobs import open_blob_store
from tuneforge.worker.resume import ResumeKeeper


def write_state(output: Path, step: int, *, whole: bool = True) -> Path:
    state = output / "resume" / f"step-{step:08d}"
    state.mkdir(parents=True)
    (state / "model.safetensors").write_bytes(b"w" * step)
    if whole:
        (state / "tuneforge.json").write_text(f'{{"step": {step}}}')
        (state / "trainer_state.pt").write_bytes(b"s" * step)
    return state


def test_the_newest_whole_state_is_stored_alone_and_restored_on_another_host(
    settings: Settings, s3_endpoint: str, s3_bucket: str
) -> None:
    blobs = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket))
    output = blobs.workspace("jobs/ftjob-a") / "output"
    keeper = ResumeKeeper(blobs, output, interval_s=60)
    old = write_state(output, 5)
    keeper.keep_latest()
    write_state(output, 10)
    write_state(output, 15, whole=False)  # being written: no markers yet
    keeper.keep_latest()

    prefix = "tf/jobs/ftjob-a/output/resume/"
    assert {k.removeprefix(prefix) for k in s3_objects(s3_endpoint, s3_bucket)} == {
        "step-00000010/model.safetensors",
        "step-00000010/tuneforge.json",
        "step-00000010/trainer_state.pt",
    }
    assert old.exists()  # the trainer, not the keeper, prunes this host's copies

    other_settings = s3_settings(settings, s3_endpoint, s3_bucket, data_dir=settings.data_dir / "b")
    other = open_blob_store(other_settings)
    elsewhere = other.workspace("jobs/ftjob-a") / "output"
    restored = ResumeKeeper(other, elsewhere, interval_s=60).restore()
    assert restored == elsewhere / "resume" / "step-00000010"
    assert (restored / "trainer_state.pt").read_bytes() == b"s" * 10

    ResumeKeeper(other, elsewhere, interval_s=60).discard()
    assert s3_objects(s3_endpoint, s3_bucket) == {}


def test_a_half_sent_state_is_not_restored(settings: Settings, s3_endpoint: str, s3_bucket: str) -> None:
    blobs = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket))
    blobs.put_bytes("jobs/ftjob-b/output/resume/step-00000020/model.safetensors", b"w")  # cut off here
    output = blobs.workspace("jobs/ftjob-b") / "output"
    assert ResumeKeeper(blobs, output, interval_s=60).restore() is None
    assert not (output / "resume").exists()

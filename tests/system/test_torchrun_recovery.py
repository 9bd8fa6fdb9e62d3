"""kill -9 one rank of a job's two-process (FSDP) training: torchrun fails the attempt, the worker retries
it, and the job resumes from its last resume state to the weights of a run that never stopped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from openai import OpenAI
from safetensors.torch import load_file

from tests.conftest import trainer_processes
from tests.system.conftest import FAST_RECOVERY, Server
from tests.system.test_crash_recovery import wait_for_event, wait_for_status, write_data
from tests.system.test_torchrun_training import WEIGHT_ATOL
from tests.unit.training.conftest import train_job
from tuneforge.settings import Settings
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train

# A smooth run: at the built-ins' full learning rate (multiplier 1) the loss spikes, and the last bits in
# which two ranks' sums differ from one process's grow into percents by the fortieth step.
HYPERPARAMETERS = {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 0.1}
TWO_RANKS = {
    **FAST_RECOVERY,
    "TUNEFORGE_TRAIN_PROCESSES": "2",
    "TUNEFORGE_TRAIN_SHARDING": "fsdp",  # the harder state to save and restore: gathered from both ranks
    "TUNEFORGE_TRAIN_THREADS": "1",
    "TUNEFORGE_RETRY_BACKOFF_S": "0.5",
}


@pytest.mark.system
@pytest.mark.slow
def test_a_killed_rank_fails_the_attempt_and_the_job_resumes(data_dir: Path, tmp_path: Path) -> None:
    server = Server(data_dir, workers=1, env=TWO_RANKS)
    try:
        client = OpenAI(base_url=f"{server.base}/v1", api_key="local", max_retries=0)
        data = write_data(tmp_path / "train.jsonl")
        file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, seed=11, hyperparameters=HYPERPARAMETERS
        )
        wait_for_event(client, job.id, "Step 7:", timeout=300)  # past the resume state at step 5
        os.kill(_rank_pid(job.id, rank=1), signal.SIGKILL)
        status = wait_for_status(client, job.id, timeout=600)
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        left = _wait_for_no_trainer(job.id)
    finally:
        server.stop()

    assert status == "succeeded", messages
    assert any("Training stopped unexpectedly" in m and "retrying" in m for m in messages)
    assert any(m.startswith("Resuming from step") for m in messages)
    assert left == []  # no rank outlived its attempt

    reference = tmp_path / "reference"
    one = train_job(tmp_path, data, output_dir=reference, threads=1, seed=11, **HYPERPARAMETERS)
    train(one, Settings(data_dir=data_dir), ListSink())
    recovered = data_dir / "blobs" / "jobs" / job.id / "output"
    expected, actual = load_file(reference / "model.safetensors"), load_file(recovered / "model.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0.0, atol=WEIGHT_ATOL)


def _rank_pid(job_id: str, rank: int) -> int:
    """The training process of `rank` (torchrun's own process names the task file too, without a RANK)."""
    for pid in trainer_processes(job_id):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no rank {rank} is training job {job_id}")


def _wait_for_no_trainer(job_id: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while trainer_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    return trainer_processes(job_id)

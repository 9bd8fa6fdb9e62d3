"""kill -9 a worker in the middle of training: another worker requeues the stalled job, resumes it from
its last resume state, and ends with the same weights as a run that never stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from openai import OpenAI
from safetensors.torch import load_file

from tests.system.conftest import FAST_RECOVERY, Server, tuneforge

HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}


def write_data(path: Path) -> Path:
    rows = [{"prompt": f"item {i} is ->", "completion": f" {'yes' if i % 3 else 'no'}"} for i in range(160)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def wait_for_event(client: OpenAI, job_id: str, needle: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no event containing {needle!r}")


def wait_for_status(client: OpenAI, job_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.fine_tuning.jobs.retrieve(job_id).status
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.5)
    raise TimeoutError("job did not finish")


@pytest.mark.system
@pytest.mark.slow
def test_killed_worker_job_resumes_and_matches_an_uninterrupted_run(server: Server, tmp_path: Path) -> None:
    client = OpenAI(base_url=f"{server.base}/v1", api_key="local", max_retries=0)
    data = write_data(tmp_path / "train.jsonl")
    file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=file_id, seed=11, hyperparameters=HYPERPARAMETERS
    )
    worker_args = ("worker", "--data-dir", str(server.data_dir))

    first = tuneforge(*worker_args, env=FAST_RECOVERY, stdout=subprocess.DEVNULL)
    wait_for_event(client, job.id, "Step 12:")  # past the resume state at step 10 (every 5 steps)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = tuneforge(*worker_args, env=FAST_RECOVERY, stdout=subprocess.DEVNULL)
    try:
        status = wait_for_status(client, job.id)
    finally:
        second.terminate()
        second.wait(30)

    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert status == "succeeded", messages
    assert any("stopped responding; requeued" in m for m in messages)
    assert any("resumed" in m for m in messages)

    reference = tmp_path / "reference"
    flags = [f"--{key}={value}" for key, value in HYPERPARAMETERS.items()]
    subprocess.run(
        [*tuneforge_cmd(), "train", "-m", "tiny", "-t", str(data), "-o", str(reference), "--seed", "11",
         "--events", "jsonl", "--data-dir", str(server.data_dir), *flags],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    recovered = server.data_dir / "blobs" / "jobs" / job.id / "output"
    expected, actual = load_file(reference / "model.safetensors"), load_file(recovered / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all((expected[k] == actual[k]).all() for k in expected)


def tuneforge_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "tuneforge"]

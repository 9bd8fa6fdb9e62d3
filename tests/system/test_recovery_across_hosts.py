"""On an object store, a job whose worker is killed (kill -9) is taken over by a worker on another host
(a data dir of its own: nothing shared but the database and the bucket), which resumes it from the resume
state the first one stored, not from the first step."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import S3_CREDENTIALS, s3_objects
from tests.system.conftest import FAST_RECOVERY, Server
from tests.system.replicas import START_S, host_dir, start_worker_env, stop_worker
from tests.system.test_crash_recovery import HYPERPARAMETERS, wait_for_status, write_data


def whole_states(objects: dict[str, int], prefix: str) -> set[str]:
    """The stored resume states with both markers (tuneforge.json, trainer_state.pt), i.e. whole."""
    steps: dict[str, set[str]] = {}
    for key in objects:
        if key.startswith(prefix):
            step, _, name = key.removeprefix(prefix).partition("/")
            steps.setdefault(step, set()).add(name)
    return {step for step, names in steps.items() if {"tuneforge.json", "trainer_state.pt"} <= names}


@pytest.mark.system
@pytest.mark.slow
def test_a_job_killed_on_one_host_resumes_on_another_from_the_stored_state(
    tmp_path: Path, shared_models_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    api_dir = host_dir(tmp_path, "api", shared_models_dir)
    env = {
        **FAST_RECOVERY,
        "TUNEFORGE_DATABASE_URL": f"sqlite:///{api_dir / 'tuneforge.db'}",
        "TUNEFORGE_BLOB_URL": f"s3://{s3_bucket}/tf",
        "TUNEFORGE_S3_ENDPOINT_URL": s3_endpoint,
        **{f"TUNEFORGE_{name.upper()}": value for name, value in S3_CREDENTIALS.items()},
    }
    server = Server(api_dir, workers=0, env=env, start_s=START_S)
    workers = []
    try:
        client = OpenAI(base_url=f"{server.base}/v1", api_key="local", max_retries=0)
        file_id = client.files.create(
            file=write_data(tmp_path / "train.jsonl").open("rb"), purpose="fine-tune"
        ).id
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, seed=11, hyperparameters=HYPERPARAMETERS
        )
        stored = f"tf/jobs/{job.id}/output/resume/"
        workers.append(start_worker_env(host_dir(tmp_path, "host-a", shared_models_dir), env))
        deadline = time.monotonic() + 180
        while not whole_states(s3_objects(s3_endpoint, s3_bucket), stored):
            assert time.monotonic() < deadline, "no whole resume state was stored"
            time.sleep(0.2)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        host_b = host_dir(tmp_path, "host-b", shared_models_dir)
        workers.append(start_worker_env(host_b, env))
        try:
            status = wait_for_status(client, job.id, timeout=600)  # generous: a busy machine is slow
        finally:
            messages = [
                e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
            ]  # every page
            print("\n".join(reversed(messages)))
        assert status == "succeeded", messages
        assert any("stopped responding; requeued" in m for m in messages)
        resumed = [m for m in messages if m.startswith("Resuming from step ")]
        assert len(resumed) == 1 and int(resumed[0].removeprefix("Resuming from step ").rstrip(".")) > 0
        objects = s3_objects(s3_endpoint, s3_bucket)
        assert f"tf/jobs/{job.id}/output/model.safetensors" in objects
        assert not any(k.startswith(stored) for k in objects), "a finished job keeps no resume state"
        assert not any((host_b / "work").rglob("*.*")), "host b keeps no copy of the finished job"
        answer = client.completions.create(
            model=client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model or "",
            prompt="item 4 is ->",
            max_tokens=1,
        )
        assert answer.choices[0].text
    finally:
        for worker in workers:
            stop_worker(worker)
        server.stop()

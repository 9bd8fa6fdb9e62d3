"""Pause and resume through the official SDK: a paused job frees its worker and keeps a resume state;
resumed, it ends with exactly the weights of a run that never stopped."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI
from safetensors.torch import load_file

from tests.api.conftest import write_jsonl
from tests.conftest import trainer_processes
from tuneforge.worker.pool import WorkerPool


def wait_for(condition: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def steps(client: OpenAI, job_id: str) -> list[int]:
    events = client.fine_tuning.jobs.list_events(job_id).data
    return [int(e.data["step"]) for e in events if e.type == "metrics" and e.data]


def weights(app: FastAPI, job_id: str) -> dict[str, object]:
    return load_file(str(app.state.blobs.local_path(f"jobs/{job_id}/output/model.safetensors")))


@pytest.mark.slow
def test_a_paused_job_resumes_to_the_weights_of_an_uninterrupted_run(
    app: FastAPI, client: OpenAI, tmp_path: Path
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": f" {'yes' if i % 3 else 'no'}"} for i in range(160)]
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id
    same = {"model": "tiny", "training_file": file_id, "seed": 7, "hyperparameters": {"n_epochs": 4}}
    state = app.state
    whole = client.fine_tuning.jobs.create(**same)  # type: ignore[arg-type]
    WorkerPool(state.settings, state.database, state.blobs).run_one_shot()
    assert client.fine_tuning.jobs.retrieve(whole.id).status == "succeeded"

    job = client.fine_tuning.jobs.create(**same)  # type: ignore[arg-type]
    pool = WorkerPool(state.settings, state.database, state.blobs)
    pool.start()
    try:
        wait_for(lambda: max(steps(client, job.id), default=0) >= 10, "training never reached step 10")
        assert client.fine_tuning.jobs.pause(job.id).status == "paused"
        wait_for(lambda: not trainer_processes(job.id), "the trainer outlived the pause", timeout=30)
        time.sleep(2)  # the worker is free, and does not take the paused job back
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
        with pytest.raises(openai.BadRequestError) as again:
            client.fine_tuning.jobs.pause(job.id)
        assert "paused" in again.value.message

        assert client.fine_tuning.jobs.resume(job.id).status == "queued"
        wait_for(
            lambda: client.fine_tuning.jobs.retrieve(job.id).status == "succeeded",
            "the resumed job never finished",
            240,
        )
    finally:
        pool.stop()
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages
    assert any(m.startswith("Resuming from step") for m in messages)
    a, b = weights(app, whole.id), weights(app, job.id)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # type: ignore[union-attr]

    with pytest.raises(openai.BadRequestError) as finished:
        client.fine_tuning.jobs.pause(whole.id)
    assert "succeeded" in finished.value.message


def test_a_paused_queued_job_can_be_cancelled_and_not_resumed_after(client: OpenAI, tmp_path: Path) -> None:
    rows = [{"prompt": "a ->", "completion": " b"}] * 4
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id)

    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as resumed:
        client.fine_tuning.jobs.resume(job.id)
    assert "cancelled" in resumed.value.message

"""A real job, start to finish: the API queues it, a worker runs the recipe in a child process, and the
model, results file, checkpoints and metrics events appear through the SDK."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tests.conftest import trainer_processes
from tuneforge.worker.pool import WorkerPool

LABELS = ("negative", "positive")


def run_queue(app: FastAPI) -> int:
    state = app.state
    return WorkerPool(state.settings, state.database, state.blobs).run_one_shot()


@pytest.mark.slow
def test_job_runs_to_success_with_model_results_checkpoints_and_metrics(
    app: FastAPI, client: OpenAI, http: TestClient, tmp_path: Path
) -> None:
    rows = [
        {"prompt": f"review {i}: {'great' if i % 2 else 'awful'} ->", "completion": f" {LABELS[i % 2]}"}
        for i in range(120)
    ]
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "train.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=file_id,
        validation_file=file_id,
        suffix="rev",
        hyperparameters={"n_epochs": 3},
    )

    assert run_queue(app) == 1

    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", client.fine_tuning.jobs.list_events(job.id, limit=100)
    assert done.fine_tuned_model == f"ft:tiny:default:rev:{job.id.split('-')[1][:8]}"
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at
    assert done.hyperparameters.n_epochs == 3 and isinstance(done.hyperparameters.batch_size, int)
    assert done.fine_tuned_model in {m.id for m in client.models.list().data}

    results = client.files.content(done.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(results)))
    assert rows and {"step", "training_loss", "validation_loss"} <= set(rows[0])

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    metrics = [e.data for e in events if e.type == "metrics" and e.data]
    assert metrics and all(isinstance(m["step"], int) and m["total_steps"] == 45 for m in metrics)
    assert all("train_loss" in m and "training_loss" in m for m in metrics)  # OpenAI's names and the CSV's
    assert events[0].message == "The job has successfully completed"

    answer = client.completions.create(
        model=done.fine_tuned_model, prompt="review 7: great ->", max_tokens=1, logprobs=5, temperature=0
    )  # greedy: the default temperature 1 samples, and a 45-step model leaves other tokens some mass
    assert answer.choices[0].text == " p"  # the first token of " positive", learnt from the training file
    top = answer.choices[0].logprobs.top_logprobs[0]  # type: ignore[union-attr]
    assert len(top) == 5 and max(top, key=top.__getitem__) == " p"

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [45, 30, 15]  # each epoch's end, the last is the model
    for checkpoint in checkpoints:  # every listed checkpoint is a model that answers
        name = checkpoint.fine_tuned_model_checkpoint
        assert name == f"{done.fine_tuned_model}:ckpt-step-{checkpoint.step_number}"
        assert client.models.retrieve(name).id == name
        assert client.completions.create(model=name, prompt="review 3: great ->", max_tokens=1).choices
        chat = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert chat.choices[0].message.role == "assistant"
        metrics = checkpoint.metrics  # the SDK's typed fields, under OpenAI's names
        assert metrics.step == checkpoint.step_number
        assert metrics.train_loss is not None and metrics.train_mean_token_accuracy is not None
        assert metrics.full_valid_loss is not None and metrics.valid_mean_token_accuracy is not None

    job_dir = Path(app.state.settings.data_dir) / "blobs" / "jobs" / job.id
    assert not list(job_dir.rglob("trainer_state.pt")) and not (job_dir / "output" / "resume").exists()
    on_disk = list((job_dir / "output" / "checkpoints").glob("step-*"))
    assert len(on_disk) == 2  # with the final model, the three the setting keeps

    # The legacy view of the same machinery: a fine-tune continued from the fine-tuned model.
    legacy = http.post(
        "/v1/fine-tunes", json={"training_file": file_id, "model": done.fine_tuned_model, "n_epochs": 1}
    ).json()
    assert run_queue(app) == 1
    finished = http.get(f"/v1/fine-tunes/{legacy['id']}").json()
    assert finished["status"] == "succeeded", finished["events"]
    assert finished["fine_tuned_model"].startswith("tiny:ft-default:")
    assert finished["result_files"][0]["purpose"] == "fine-tune-results"


@pytest.mark.slow
def test_unloadable_base_model_fails_the_job_with_a_message_and_no_retry(
    app: FastAPI, client: OpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"prompt": "x", "completion": " y"}\n')
    file_id = client.files.create(file=path.open("rb"), purpose="fine-tune").id
    # A hub id with neither a cached copy nor a hub is refused at creation (test_unavailable_models.py);
    # one whose download was cut short (a config, nothing else) is accepted, and fails to load.
    cache = tmp_path / "hf-cache"
    (cache / "models--no--such-model-on-any-hub" / "snapshots" / "cut").mkdir(parents=True)
    (cache / "models--no--such-model-on-any-hub" / "snapshots" / "cut" / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    job = client.fine_tuning.jobs.create(
        model="no/such-model-on-any-hub", training_file=file_id, hyperparameters={"n_epochs": 1}
    )

    run_queue(app)

    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert "no/such-model-on-any-hub" in failed.error.message
    assert str(app.state.settings.data_dir) not in failed.model_dump_json()
    assert not any("retrying" in e.message for e in client.fine_tuning.jobs.list_events(job.id).data)


@pytest.mark.slow
def test_cancel_a_running_job_stops_its_child_within_seconds(
    app: FastAPI, client: OpenAI, tmp_path: Path
) -> None:
    rows = [{"prompt": f"long example {i} " * 20, "completion": " done"} for i in range(300)]
    data = write_jsonl(tmp_path / "big.jsonl", rows)
    file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=file_id, hyperparameters={"n_epochs": 20}
    )
    state = app.state
    pool = WorkerPool(state.settings, state.database, state.blobs)
    pool.start()
    try:
        deadline = time.monotonic() + 60
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data):
            assert time.monotonic() < deadline, "training never reported metrics"
            time.sleep(0.2)
        assert trainer_processes(job.id)

        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        deadline = time.monotonic() + 15
        while trainer_processes(job.id):
            assert time.monotonic() < deadline, "the training child outlived the cancel"
            time.sleep(0.2)
    finally:
        pool.stop()
    final = client.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None
    assert client.fine_tuning.jobs.list_events(job.id).data[0].message == "Fine-tuning job cancelled"


@pytest.mark.slow
def test_a_storage_fault_is_retried_after_a_backoff_and_no_message_names_a_server_path(
    app: FastAPI, client: OpenAI, tmp_path: Path
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": f" {LABELS[i % 2]}"} for i in range(40)]
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id
    state = app.state
    settings = state.settings.model_copy(update={"retry_backoff_s": 1.0})
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, hyperparameters={"n_epochs": 2})
    # A file where the checkpoints directory goes: the first epoch's end cannot be written.
    blocker = Path(state.blobs.local_path(f"jobs/{job.id}/output/checkpoints"))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")

    pool = WorkerPool(settings, state.database, state.blobs)
    pool.start()
    try:
        deadline = time.monotonic() + 120
        while not any("retrying" in e.message for e in client.fine_tuning.jobs.list_events(job.id).data):
            assert client.fine_tuning.jobs.retrieve(job.id).status != "failed"
            assert time.monotonic() < deadline, "the fault was never reported"
            time.sleep(0.2)
        blocker.unlink()  # the storage works again before the retry
        while client.fine_tuning.jobs.retrieve(job.id).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline + 120, "the retry never finished"
            time.sleep(0.3)
    finally:
        pool.stop()
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded", [e.message for e in events]
    retry = next(e.message for e in events if "retrying" in e.message)
    assert "could not write its files" in retry and "in 1 s" in retry
    assert all(str(settings.data_dir) not in e.message and "/tmp" not in e.message for e in events)

"""TUNEFORGE_BLOB_URL=s3://… on a real S3 protocol server: the API stores uploads in the bucket, a worker
with its own data dir (another host: it shares only the database and the bucket) trains, the model is
served from the bucket, and every object is where it should be."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.conftest import s3_objects, s3_settings
from tuneforge.api.app import create_app
from tuneforge.settings import Settings
from tuneforge.store.blobs import open_blob_store
from tuneforge.store.db import open_database
from tuneforge.worker.pool import WorkerPool

MODEL_FILES = {"config.json", "model.safetensors", "tuneforge.json", "tokenizer.json"}


@pytest.mark.slow
def test_a_job_on_s3_trains_on_another_host_serves_and_keeps_every_object_in_place(
    settings: Settings, s3_endpoint: str, s3_bucket: str, train_file: Path
) -> None:
    api_settings = s3_settings(settings, s3_endpoint, s3_bucket)
    worker_dir = settings.data_dir.parent / "worker-host"
    worker_dir.mkdir()
    (worker_dir / "base-models").symlink_to(settings.data_dir / "base-models")
    worker_settings = api_settings.model_copy(
        update={"data_dir": worker_dir, "database_url": api_settings.resolved_database_url}
    )
    with TestClient(create_app(api_settings, workers=0)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, hyperparameters={"n_epochs": 2}
        )

        database, blobs = open_database(worker_settings), open_blob_store(worker_settings)
        assert WorkerPool(worker_settings, database, blobs).run_one_shot() == 1

        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded", client.fine_tuning.jobs.list_events(job.id, limit=50)
        assert done.fine_tuned_model is not None
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert len(checkpoints) == 2
        for name in (done.fine_tuned_model, checkpoints[1].fine_tuned_model_checkpoint):
            answer = client.completions.create(model=name, prompt="review 3 ->", max_tokens=2)
            assert answer.choices[0].text
        assert client.files.content(done.result_files[0]).text.startswith("step,")

        objects = s3_objects(s3_endpoint, s3_bucket)
        output = f"tf/jobs/{job.id}/output"
        earlier = f"{output}/checkpoints/step-{checkpoints[1].step_number:08d}"
        assert set(objects) == {
            f"tf/files/{file_id}",
            f"tf/files/{done.result_files[0]}",
            *(k for k in objects if k.startswith(f"{output}/") and k.count("/") == 4),
            *(k for k in objects if k.startswith(f"{earlier}/") and k.count("/") == 6),
        }, objects  # no resume state, task file, log, lock or half-written object
        assert MODEL_FILES | {"results.csv"} <= {k.rsplit("/", 1)[1] for k in objects if k.count("/") == 4}
        assert {k.rsplit("/", 1)[1] for k in objects if k.startswith(f"{earlier}/")} >= MODEL_FILES
        assert not any((worker_dir / "work").rglob("*.*")), "the worker keeps no copy of a finished job"
        assert not (settings.data_dir / "blobs").exists() and not (worker_dir / "blobs").exists()

        client.models.delete(done.fine_tuned_model)
        assert not any(
            k.startswith(f"{output}/") and k.count("/") == 4 for k in s3_objects(s3_endpoint, s3_bucket)
        )

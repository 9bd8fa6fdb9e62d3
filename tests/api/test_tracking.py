"""Curves through the API: a PNG of the right size for finished jobs (from the results CSV) and running
ones (from metrics events), on both fine-tuning APIs."""

from __future__ import annotations

import csv
import glob
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from PIL import Image

from tuneforge import ids
from tuneforge.settings import Settings
from tuneforge.store import events as event_store
from tuneforge.store import jobs as job_store
from tuneforge.tracking.curves import HEIGHT_PX, WIDTH_PX

RESULTS = (
    "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy,"
    "validation_loss,validation_sequence_accuracy,validation_token_accuracy,classification/accuracy\n"
    "1,100,4,2.5,0,0.3,,,,\n"
    "2,200,8,1.5,0.25,0.6,1.7,0.2,0.5,0.5\n"
    "3,300,12,0.9,0.5,0.8,,,,\n"
)


def add_job(app: FastAPI, *, api: str, status: str, results: str | None = None, **fields: Any) -> str:
    job_id = ids.new_id("ft" if api == "fine-tunes" else "ftjob")
    result_files = []
    if results is not None:
        file_id = ids.new_id("file")
        app.state.blobs.put_bytes(f"files/{file_id}", results.encode())
        result_files.append(file_id)
    with app.state.database.session() as session:
        job_store.add_job(
            session,
            id=job_id,
            api=api,
            owner="default",
            model="tiny",
            training_file="file-train",
            validation_file=None,
            hyperparameters={"n_epochs": 1},
            resolved={"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1.0},
            suffix=None,
            seed=7,
            integrations=[],
            status=status,
            fine_tuned_model="ft:tiny:default::x" if status == "succeeded" else None,
            result_files=result_files,
            **fields,
        )
    return job_id


def assert_png(body: bytes) -> None:
    image = Image.open(io.BytesIO(body))
    image.verify()
    assert image.format == "PNG" and image.size == (WIDTH_PX, HEIGHT_PX)


@pytest.mark.parametrize(
    ("api", "prefix"), [("fine_tuning.jobs", "/v1/fine_tuning/jobs"), ("fine-tunes", "/v1/fine-tunes")]
)
def test_finished_job_curves_are_a_png_of_the_documented_size(
    app: FastAPI, http: TestClient, api: str, prefix: str
) -> None:
    job_id = add_job(app, api=api, status="succeeded", results=RESULTS)
    response = http.get(f"{prefix}/{job_id}/curves.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert_png(response.content)


def test_running_job_curves_come_from_its_metrics_events(app: FastAPI, http: TestClient) -> None:
    job_id = add_job(app, api="fine_tuning.jobs", status="running")
    assert http.get(f"/v1/fine_tuning/jobs/{job_id}/curves.png").status_code == 404
    with app.state.database.session() as session:
        for step in (1, 2):
            data = {"step": step, "training_loss": 2.0 / step}
            event_store.add_event(session, job_id, f"Step {step}", type="metrics", data=data)
    response = http.get(f"/v1/fine_tuning/jobs/{job_id}/curves.png")
    assert response.status_code == 200
    assert_png(response.content)


def test_curves_of_an_unknown_job_are_an_openai_404(http: TestClient) -> None:
    response = http.get("/v1/fine_tuning/jobs/ftjob-nope/curves.png")
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "job_id"


@pytest.mark.slow
def test_job_integrations_log_the_real_training_live(
    app: FastAPI, client: OpenAI, http: TestClient, train_file: Path, settings: Settings
) -> None:
    from mlflow.tracking import MlflowClient

    from tests.unit.tracking.conftest import history, wandb_records
    from tuneforge.tracking.trackers import mlflow_tracking_uri
    from tuneforge.worker.pool import WorkerPool

    file_id = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=file_id,
        hyperparameters={"n_epochs": 1},
        extra_body={
            "integrations": [  # the SDK's type knows only wandb
                {"type": "wandb", "wandb": {"project": "tf-test", "tags": ["ci"]}},
                {"type": "mlflow", "mlflow": {"experiment_name": "tf-test"}},
            ]
        },
    )
    assert WorkerPool(settings, app.state.database, app.state.blobs).run_one_shot() == 1
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert not any("logging stopped" in m for m in messages), messages
    steps = [
        int(r["step"]) for r in csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text))
    ]

    [run_dir] = glob.glob(str(settings.data_dir / "wandb" / "wandb" / "offline-run-*"))
    logged = history(wandb_records(Path(run_dir)))
    assert [row["_step"] for row in logged] == steps and all("training_loss" in row for row in logged)

    mlflow = MlflowClient(tracking_uri=mlflow_tracking_uri(settings))
    [run] = mlflow.search_runs([mlflow.get_experiment_by_name("tf-test").experiment_id])
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "training_loss")] == steps
    assert run.data.tags["tuneforge.fine_tuned_model"] == done.fine_tuned_model
    assert "tuneforge.json" in {Path(a.path).name for a in mlflow.list_artifacts(run.info.run_id, "model")}

    png = http.get(f"/v1/fine_tuning/jobs/{job.id}/curves.png")
    assert png.status_code == 200
    assert_png(png.content)

    # The fine-tuned model, found by name in the store, evaluated by the route and by `tuneforge eval`.
    from tuneforge.evaluation.run import EvalOptions
    from tuneforge.evaluation.service import evaluate_file

    body = http.post(
        "/v1/tuneforge/evaluations", json={"model": done.fine_tuned_model, "file": file_id}
    ).json()
    in_cli = evaluate_file(settings, [str(done.fine_tuned_model)], train_file, EvalOptions())
    assert body["reports"][0]["metrics"]["accuracy"] == in_cli["reports"][0]["metrics"]["accuracy"]
    assert in_cli["reports"][0]["metrics"]["labels"] == [" negative", " positive"]

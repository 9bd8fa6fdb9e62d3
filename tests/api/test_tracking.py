"""Curves through the API: a PNG of the right size for finished jobs (from the results CSV) and running
ones (from metrics events), on both fine-tuning APIs."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tuneforge import ids
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

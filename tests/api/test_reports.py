"""GET /v1/files/{id}/report: prepare's analysis of a stored file, as the dashboard's Files page shows it."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from openai import OpenAI


def test_report_of_a_stored_classification_file(client: OpenAI, http: TestClient, tmp_path: Path) -> None:
    rows = [{"prompt": f"review {i}", "completion": " positive" if i % 3 else " negative"} for i in range(30)]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    stored = client.files.create(file=path.open("rb"), purpose="fine-tune")

    response = http.get(f"/v1/files/{stored.id}/report", headers={"Authorization": "Bearer test"})

    assert response.status_code == 200, response.text
    body = response.json()
    report = body["report"]
    assert (body["file_id"], body["model"], report["file"]) == (stored.id, "tiny", "reviews.jsonl")
    assert report["n_examples"] == 30 and report["task"] == "classification"
    assert report["classification"]["classes"] == {" positive": 20, " negative": 10}
    assert report["classification"]["balance"] == 0.5
    assert report["checks"]["separator"]["suggested"]  # no shared separator: prepare proposes one
    assert report["tokens"]["total_estimate"] > 0


def test_report_names_an_unknown_model(client: OpenAI, http: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"prompt": "a ->", "completion": " b\\n"}\n')
    stored = client.files.create(file=path.open("rb"), purpose="fine-tune")

    response = http.get(f"/v1/files/{stored.id}/report?model=nope", headers={"Authorization": "Bearer test"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert "nope" in response.json()["error"]["message"]


def test_report_of_a_missing_file_is_404(http: TestClient) -> None:
    response = http.get("/v1/files/file-missing/report", headers={"Authorization": "Bearer test"})
    assert response.status_code == 404

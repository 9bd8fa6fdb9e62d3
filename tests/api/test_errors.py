from __future__ import annotations

from fastapi.testclient import TestClient


def test_unknown_route_gets_the_openai_envelope(http: TestClient) -> None:
    response = http.get("/v1/files/%2Ftmp%2Fdata.jsonl")  # the legacy CLI probes local paths like this
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_framework_validation_error_is_a_400_naming_the_param(http: TestClient) -> None:
    response = http.post("/v1/fine-tunes", json={"training_file": "file-x", "n_epochs": "many"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n_epochs"


def test_missing_body_field_names_it(http: TestClient) -> None:
    response = http.post("/v1/fine_tuning/jobs", json={"model": "tiny"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "training_file"


def test_health(http: TestClient) -> None:
    assert http.get("/health").json() == {"status": "ok"}

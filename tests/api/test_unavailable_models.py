"""Hub aliases on a machine with no hub (the tests run with HF_HUB_OFFLINE=1): listed but marked
unavailable, refused at job creation and at completions at once, with a message saying what to set."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI


def test_models_list_marks_hub_aliases_unavailable(http: TestClient) -> None:
    listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert listed["tiny"]["available"] is True and listed["tiny"]["unavailable_reason"] is None
    assert listed["ada"]["available"] is False
    assert "HF_HUB_OFFLINE" in listed["ada"]["unavailable_reason"]
    assert set(listed["ada"]) >= {"id", "object", "created", "owned_by"}  # OpenAI's fields stay
    assert http.get("/v1/models/davinci-002").json()["available"] is False


@pytest.mark.parametrize("model", ["davinci-002", "org/not-cached"])
def test_job_on_an_unloadable_hub_model_is_a_400_naming_model(
    client: OpenAI, train_file: Path, model: str
) -> None:
    file_id = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=model, training_file=file_id)
    assert time.monotonic() - started < 5.0  # answered, not waiting on torch or a download (far slower)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "model"
    assert "TUNEFORGE_MODEL_ALIASES" in body["message"] and "local model directory" in body["message"]
    assert client.fine_tuning.jobs.list().data == []


def test_completion_on_an_unloadable_hub_model_is_a_404_at_once(client: OpenAI) -> None:
    # refused before the engine starts (its first request imports torch: seconds)
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="ada", prompt="hi", max_tokens=2)
    assert time.monotonic() - started < 5.0  # answered, not waiting on torch or a download (far slower)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_available" and body["param"] == "model"
    assert "HF_HUB_OFFLINE" in body["message"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="ada", messages=[{"role": "user", "content": "hi"}])

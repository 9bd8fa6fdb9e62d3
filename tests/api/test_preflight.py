"""POST /v1/fine_tuning/jobs/preflight: a create's dry run, through the official SDK's raw `post`. The
preflight process is real (spawned, torch imported there); nothing is queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from tuneforge.settings import Settings
from tuneforge.training.estimate import CALIBRATION_FILE


def preflight(client: OpenAI, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.post("/fine_tuning/jobs/preflight", body=body, cast_to=object)
    return answer


def refusal(client: OpenAI, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as info:
        client.post(path, body=body, cast_to=object)
    assert info.value.status_code == 400
    error: dict[str, Any] = info.value.body  # type: ignore[assignment]
    return error


def test_preflight_resolves_auto_with_reasons_estimates_and_queues_nothing(
    client: OpenAI, train_file: Path, settings: Settings
) -> None:
    file_id = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    lines = [json.loads(line) for line in train_file.read_text().splitlines()]

    full = preflight(client, model="tiny", training_file=file_id, hyperparameters={"n_epochs": 3})
    assert full["object"] == "fine_tuning.job.preflight" and full["training_file"] == file_id
    hp = full["hyperparameters"]
    assert hp["n_epochs"] == 3 and "n_epochs" not in hp["reasons"]  # asked for: no reason to give
    assert {"batch_size", "learning_rate_multiplier", "tuning"} <= hp["reasons"].keys()  # "auto" chose these
    assert all(reason.strip() for reason in hp["reasons"].values())
    batches = -(-len(lines) // hp["batch_size"])
    assert full["n_train_examples"] == len(lines) and full["steps_per_epoch"] == batches
    assert full["total_steps"] == 3 * full["steps_per_epoch"] == hp["total_steps"]
    assert full["trained_tokens"] == 3 * full["trained_tokens_per_epoch"] > 0
    assert full["trainable_parameters"] == full["n_parameters"] > 0  # full fine-tuning of a built-in
    estimate = full["estimate"]
    assert estimate["seconds"] > 0 and estimate["peak_cpu_bytes"] > full["n_parameters"] * 16
    assert estimate["device"] == "cpu" and estimate["peak_gpu_bytes"] is None
    assert estimate["calibration"] == "warm-up"  # nothing measured here yet: real steps were timed

    # The warm-up's measure is kept in the data dir: a longer run of the same shape reuses it.
    assert (settings.data_dir / CALIBRATION_FILE).is_file()
    longer = preflight(client, model="tiny", training_file=file_id, hyperparameters={"n_epochs": 6})
    assert longer["estimate"]["seconds_per_token"] == estimate["seconds_per_token"]
    assert longer["estimate"]["seconds"] > estimate["seconds"]
    assert client.fine_tuning.jobs.list().data == []  # nothing queued


@pytest.mark.parametrize(
    "body",
    [
        {"model": "no-such-model", "training_file": "FILE"},
        {"model": "tiny", "training_file": "file-missing"},
        {"model": "tiny", "training_file": "FILE", "suffix": "bad suffix!"},
        {"model": "tiny", "training_file": "FILE", "hyperparameters": {"n_epochs": 0}},
        {"model": "tiny", "training_file": "FILE", "integrations": [{"type": "neptune"}]},
    ],
)
def test_preflight_refuses_bad_input_with_creates_own_400(
    client: OpenAI, http: TestClient, train_file: Path, body: dict[str, Any]
) -> None:
    file_id = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    body = {k: file_id if v == "FILE" else v for k, v in body.items()}
    from_create = refusal(client, "/fine_tuning/jobs", body)
    assert refusal(client, "/fine_tuning/jobs/preflight", body) == from_create
    assert client.fine_tuning.jobs.list().data == []

"""LoRA fine-tunes of a built-in base (`builtin_tuning=lora`) served as adapters, and
`GET /v1/tuneforge/adapters` listing what the engine holds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tests.api.test_job_execution import run_queue
from tests.unit.inference import conftest as inference_fixtures
from tuneforge.api.app import create_app
from tuneforge.settings import Settings

one_torch_thread = inference_fixtures.one_torch_thread


def test_no_adapter_is_listed_before_any_is_served(client: OpenAI, settings: Settings) -> None:
    listing = client.get("/tuneforge/adapters", cast_to=httpx.Response).json()
    assert listing == {
        "object": "list", "data": [], "memory_bytes": 0, "memory_budget_bytes": settings.adapter_memory
    }  # fmt: skip


@pytest.fixture
def lora_app(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"builtin_tuning": "lora"}), workers=0)


@pytest.mark.slow
def test_a_lora_fine_tune_of_a_built_in_is_served_as_an_adapter_and_listed(
    lora_app: FastAPI, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(40)]
    with TestClient(lora_app) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = client.files.create(
            file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
        ).id
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, hyperparameters={"n_epochs": 1}
        )
        assert run_queue(lora_app) == 1
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded" and done.fine_tuned_model
        model_dir = lora_app.state.locate_model(done.fine_tuned_model)
        assert (Path(model_dir) / "adapter_config.json").exists()  # an adapter, not full weights

        answer = client.completions.create(model=done.fine_tuned_model, prompt="item 3 ->", max_tokens=1)
        assert answer.choices[0].text
        listing = client.get("/tuneforge/adapters", cast_to=httpx.Response).json()
    assert [a["model"] for a in listing["data"]] == [done.fine_tuned_model]
    assert listing["data"][0]["base"] == "tiny" and listing["memory_bytes"] == listing["data"][0]["bytes"] > 0

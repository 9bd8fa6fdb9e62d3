"""POST /v1/tuneforge/evaluations: a test file uploaded through the SDK, two models evaluated side by side
on the server's inference engine, plots returned as base64 PNGs, errors in OpenAI's envelope."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from PIL import Image

from tests.api.conftest import write_jsonl
from tuneforge.evaluation.plots import CONFUSION_PX, RELIABILITY_PX


def test_evaluation_compares_two_models_on_an_uploaded_file(
    client: OpenAI, http: TestClient, tmp_path: Path
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(8)]
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id

    response = http.post(
        "/v1/tuneforge/evaluations",
        json={
            "model": "tiny",
            "file": file_id,
            "compare": "tiny-gpt2",
            "include_plots": True,
            "include_predictions": True,
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "tuneforge.evaluation" and body["n"] == 8
    assert [r["model"] for r in body["reports"]] == ["tiny", "tiny-gpt2"]
    for report in body["reports"]:
        found = report["metrics"]
        right = sum(p["prediction"] == p["reference"] for p in report["predictions"])
        assert found["accuracy"] == right / 8
        assert sum(map(sum, found["confusion_matrix"]["matrix"])) == 8
        for key, size in (("confusion_matrix_png", CONFUSION_PX), ("reliability_png", RELIABILITY_PX)):
            image = Image.open(io.BytesIO(base64.b64decode(report["plots"][key])))
            assert image.format == "PNG" and image.size == size


def test_evaluation_errors_name_the_param(client: OpenAI, http: TestClient, tmp_path: Path) -> None:
    missing = http.post("/v1/tuneforge/evaluations", json={"model": "tiny", "file": "file-nope"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "file"
    rows = [{"prompt": "a ->", "completion": " b"}]
    file_id = client.files.create(
        file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune"
    ).id
    unknown = http.post("/v1/tuneforge/evaluations", json={"model": "no-such-model", "file": file_id})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


def test_eval_over_http_gives_the_in_process_numbers(app: FastAPI, http: TestClient, tmp_path: Path) -> None:
    import asyncio

    import httpx

    from tuneforge.evaluation.completers import EngineCompleter, HttpCompleter
    from tuneforge.evaluation.examples import load_examples
    from tuneforge.evaluation.run import EvalOptions
    from tuneforge.evaluation.service import evaluate_models

    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 3 else " no"} for i in range(6)]
    examples = load_examples(write_jsonl(tmp_path / "t.jsonl", rows))  # type: ignore[arg-type]

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        remote = HttpCompleter("http://testserver/v1", "test", transport=httpx.ASGITransport(app=app))
        over_http = await evaluate_models(remote, ["tiny"], examples, EvalOptions(), None)
        await remote.aclose()
        local = EngineCompleter(app.state.inference)
        return over_http, await evaluate_models(local, ["tiny"], examples, EvalOptions(), None)

    over_http, in_process = asyncio.run(both())
    assert over_http["reports"][0]["predictions"] == in_process["reports"][0]["predictions"]
    assert over_http["reports"][0]["metrics"] == in_process["reports"][0]["metrics"]

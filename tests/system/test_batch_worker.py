"""A batch run by a standalone `tuneforge worker --one-shot` (the API serving with `--workers 0`): the
worker process brings its own inference engine, answers every line, and drains the queue."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from openai import OpenAI

from tests.system.conftest import Server, tuneforge

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_a_standalone_worker_runs_a_batch(server: Server, data_dir: Path, tmp_path: Path) -> None:
    client = OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)
    body = {"model": "tiny", "prompt": "review ->", "max_tokens": 1, "logprobs": 5, "temperature": 0}
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body})
            + "\n"
            for i in range(30)
        )
    )
    file = client.files.create(file=path.open("rb"), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/completions", completion_window="24h")

    worker = tuneforge("worker", "--one-shot", "--data-dir", str(data_dir), stdout=subprocess.PIPE)
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0 and b"ran 1 job(s) and batch(es)" in out

    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts.completed == 30  # type: ignore[union-attr]
    lines = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]  # type: ignore[arg-type]
    direct = client.completions.create(**body)
    assert {line["response"]["body"]["choices"][0]["text"] for line in lines} == {direct.choices[0].text}

"""Real `serve` and two `tuneforge worker` processes sharing PostgreSQL: every job runs exactly once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import _fresh_postgres_database
from tests.system.conftest import Server, tuneforge


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _fresh_postgres_database()


@pytest.mark.system
@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_postgres_run_each_job_exactly_once(
    data_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    env = {"TUNEFORGE_DATABASE_URL": postgres_url}
    server = Server(data_dir, workers=0, env=env)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        client = OpenAI(base_url=f"{server.base}/v1", api_key="local", max_retries=0)
        data = tmp_path / "train.jsonl"
        data.write_text(
            "".join(json.dumps({"prompt": f"q{i} ->", "completion": f" a{i % 2}"}) + "\n" for i in range(24))
        )
        file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
        jobs = [
            client.fine_tuning.jobs.create(
                model="tiny", training_file=file_id, hyperparameters={"n_epochs": 1}
            ).id
            for _ in range(4)
        ]
        workers = [
            tuneforge("worker", "--data-dir", str(data_dir), env=env, stdout=subprocess.DEVNULL)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 150
        while {client.fine_tuning.jobs.retrieve(j).status for j in jobs} != {"succeeded"}:
            assert time.monotonic() < deadline, [client.fine_tuning.jobs.retrieve(j).status for j in jobs]
            time.sleep(0.5)
        for job_id in jobs:
            messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data]
            assert messages.count("Fine-tuning job started") == 1, messages
            assert not any("resumed" in m for m in messages)
        assert len({client.fine_tuning.jobs.retrieve(j).fine_tuned_model for j in jobs}) == 4
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        server.stop()

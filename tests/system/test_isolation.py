"""One organisation cannot reach another's model through its path on the server: against a real `tuneforge
serve` with two organisations' keys, org B naming org A's job output (or /etc, the data directory, a path
with `..`) gets exactly the answer an unknown model gets, on completions, job creation and file reports;
and every file the server wrote is private to its user."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.system.conftest import Server

pytestmark = pytest.mark.system


def create_key(data_dir: Path, org: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tuneforge", "keys", "create", "--org", org, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[Server, str, str]]:
    keys = create_key(data_dir, "org-a"), create_key(data_dir, "org-b")
    server = Server(data_dir, workers=1, env={}, auth=True)
    yield server, *keys
    server.stop()


def trained_output(client: OpenAI, data_dir: Path, tmp_path: Path) -> Path:
    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(8)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    file_id = client.files.create(file=(tmp_path / "train.jsonl").open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=file_id, hyperparameters={"n_epochs": 1, "batch_size": 8}
    )
    deadline = time.monotonic() + 120
    while (status := client.fine_tuning.jobs.retrieve(job.id).status) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert status == "succeeded"
    output = data_dir / "blobs" / "jobs" / job.id / "output"
    assert (output / "config.json").exists() or (output / "adapter_config.json").exists()
    return output


def answers(http: httpx.Client, model: str, file_id: str) -> list[tuple[int, dict[str, object]]]:
    """What completions, job creation, a file report and an evaluation say to `model`, the name masked."""
    responses = [
        http.post("/v1/completions", json={"model": model, "prompt": "item 1 ->", "max_tokens": 1}),
        http.post("/v1/fine_tuning/jobs", json={"model": model, "training_file": file_id}),
        http.get(f"/v1/files/{file_id}/report", params={"model": model}),
        http.post("/v1/tuneforge/evaluations", json={"model": model, "file": file_id, "max_tokens": 1}),
    ]
    return [(r.status_code, json.loads(r.text.replace(json.dumps(model)[1:-1], "NAME"))) for r in responses]


def test_another_organisations_output_path_reads_as_an_unknown_model(
    served: tuple[Server, str, str], data_dir: Path, tmp_path: Path
) -> None:
    server, key_a, key_b = served
    client_a = OpenAI(base_url=f"{server.base}/v1", api_key=key_a, max_retries=0)
    output = trained_output(client_a, data_dir, tmp_path)
    client_b = OpenAI(base_url=f"{server.base}/v1", api_key=key_b, max_retries=0)
    file_b = client_b.files.create(file=(tmp_path / "train.jsonl").open("rb"), purpose="fine-tune").id

    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key_b}"}, timeout=60) as http:
        unknown = answers(http, "no-such-model", file_b)
        assert [status for status, _ in unknown] == [404, 400, 400, 404]
        assert all(body["error"]["code"] == "model_not_found" for _, body in unknown)  # type: ignore[index]
        for name in (
            str(output),
            "/etc",
            str(data_dir),
            f"{output}/../output",
            f"{data_dir}/base-models/tiny",
        ):
            assert answers(http, name, file_b) == unknown, name

    # Nor can another user of the machine read it: the server and its training child create private files.
    shared = [f"{p} {stat.S_IMODE(p.lstat().st_mode):o}" for p in data_dir.rglob("*") if not _private(p)]
    assert shared == []


def _private(path: Path) -> bool:
    if path.is_symlink():  # the test's link to the shared built-in models
        return True
    return stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600)

"""The legacy `openai` 0.28.1 CLI, unchanged, against a real `tuneforge serve`: what people who fine-tuned on
OpenAI typed still works. The CLI lives in its own venv (`make setup` creates .venv/legacy-openai)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import Server

REPO = Path(__file__).resolve().parents[2]
LEGACY_OPENAI = REPO / ".venv" / "legacy-openai" / "bin" / "openai"

pytestmark = [
    pytest.mark.system,
    pytest.mark.slow,
    pytest.mark.skipif(not LEGACY_OPENAI.exists(), reason="no legacy openai CLI: run `make setup`"),
]


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    server = Server(data_dir, workers=1, env={})
    yield server
    server.stop()


def openai_cli(server: Server, *args: str, cwd: Path) -> str:
    """Run `openai -b … -k x api …`; stdin is closed, so any interactive question would fail the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [str(LEGACY_OPENAI), "-b", f"{server.base}/v1", "-k", "x", "api", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"openai {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_legacy_cli_fine_tunes_files_models_and_completions(server: Server, tmp_path: Path) -> None:
    rows = [{"prompt": f"review {i} ->", "completion": " good" if i % 2 else " bad"} for i in range(24)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    out = openai_cli(
        server, "fine_tunes.create", "-t", "data.jsonl", "-m", "tiny", "--n_epochs", "1", cwd=tmp_path
    )
    fine_tune_id = re.search(r"Created fine-tune: (ft-\w+)", out).group(1)  # type: ignore[union-attr]
    file_id = re.search(r"Uploaded file from data.jsonl: (file-\w+)", out).group(1)  # type: ignore[union-attr]
    assert "Job complete! Status: succeeded" in out, out
    model = re.search(r"completions.create -m (\S+) -p", out).group(1)  # type: ignore[union-attr]

    results = openai_cli(server, "fine_tunes.results", "-i", fine_tune_id, cwd=tmp_path)
    assert results.splitlines()[0].startswith("step,elapsed_tokens,elapsed_examples,training_loss")
    assert len(results.strip().splitlines()) == 1 + 3  # header + one epoch of 3 batches of 8

    listed = json.loads(openai_cli(server, "fine_tunes.list", cwd=tmp_path))
    assert [ft["id"] for ft in listed["data"]] == [fine_tune_id]

    out = openai_cli(server, "fine_tunes.create", "-t", file_id, "-m", "tiny", "--no_follow", cwd=tmp_path)
    second = json.loads(out)["id"]  # --no_follow prints the created fine-tune
    cancelled = json.loads(openai_cli(server, "fine_tunes.cancel", "-i", second, cwd=tmp_path))
    assert cancelled["status"] == "cancelled"

    files = json.loads(openai_cli(server, "files.list", cwd=tmp_path))
    assert file_id in {f["id"] for f in files["data"]}
    models = json.loads(openai_cli(server, "models.list", cwd=tmp_path))
    assert {"tiny", model} <= {m["id"] for m in models["data"]}

    if httpx.post(f"{server.base}/v1/completions", json={}).status_code == 404:
        pytest.skip("/v1/completions is not served yet")
    out = openai_cli(server, "completions.create", "-m", model, "-p", "review 3 ->", "-M", "1", cwd=tmp_path)
    assert out.startswith("review 3 ->") and len(out) > len("review 3 ->")

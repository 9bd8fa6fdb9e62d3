"""`tuneforge train --events jsonl`: the recipe in a child process speaking typed JSON lines, with the exit
codes the worker reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.training.conftest import SENTIMENT_WORDS, keyword_task, write_jsonl
from tuneforge.settings import Settings

pytestmark = [pytest.mark.system, pytest.mark.slow]


def start(args: list[str], settings: Settings) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "tuneforge",
        "train",
        "--model",
        "tiny",
        "--events",
        "jsonl",
        "--data-dir",
        str(settings.data_dir),
        "--seed",
        "0",
        "--threads",
        "2",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEFORGE_")}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_events_checkpoints_and_exit_codes(settings: Settings, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", keyword_task(SENTIMENT_WORDS, 64, seed=1))  # type: ignore[arg-type]
    out = tmp_path / "out"
    child = start(
        [
            "-t",
            str(train),
            "-v",
            str(train),
            "-o",
            str(out),
            "--n_epochs",
            "2",
            "--checkpoint-every",
            "3",
            "--resume",
        ],
        settings,
    )
    stdout, stderr = child.communicate(timeout=300)
    events = [json.loads(line) for line in stdout.splitlines()]

    assert child.returncode == 0, stderr
    assert events[0]["type"] == "hyperparameters" and events[0]["resolved"]["n_epochs"] == 2
    assert events[-1]["type"] == "done" and events[-1]["trained_tokens"] > 0
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert checkpoints and all(Path(e["path"], "tuneforge.json").exists() for e in checkpoints[-3:])
    manifest = json.loads((out / "tuneforge.json").read_text())
    assert manifest["base_model"]["name"] == "tiny" and manifest["method"] == "full"
    assert manifest["metrics"]["training_loss"] == events[-1]["metrics"]["train_loss"]
    assert not (out / "resume").exists()  # a finished run keeps no optimizer state

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": 3}\n')
    child = start(["-t", str(bad), "-o", str(tmp_path / "bad-out")], settings)
    stdout, _ = child.communicate(timeout=300)
    error = json.loads(stdout.splitlines()[-1])
    assert child.returncode == 2 and error["type"] == "error" and "line 2" in error["message"]


def test_sigterm_stops_promptly_and_resume_continues(settings: Settings, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", keyword_task(SENTIMENT_WORDS, 64, seed=1))  # type: ignore[arg-type]
    args = [
        "-t",
        str(train),
        "-o",
        str(tmp_path / "out"),
        "--n_epochs",
        "4",
        "--batch_size",
        "8",
        "--checkpoint-every",
        "2",
        "--resume",
    ]
    child = start(args, settings)
    assert child.stdout is not None
    for line in child.stdout:
        if json.loads(line)["type"] == "checkpoint":
            break
    child.send_signal(signal.SIGTERM)
    rest = [json.loads(line) for line in child.communicate(timeout=120)[0].splitlines()]
    # Stopped at the next step, not after the rest of the run: an outcome, not a time (machines get busy)
    assert child.returncode != 0 and rest[-1]["code"] == "interrupted"
    assert not any(event["type"] == "done" for event in rest)

    child = start(args, settings)  # the worker's retry: the same command, which always has --resume
    stdout, stderr = child.communicate(timeout=300)
    resumed = [json.loads(line) for line in stdout.splitlines()]
    assert child.returncode == 0, stderr
    assert any("Resuming from step" in e.get("message", "") for e in resumed)

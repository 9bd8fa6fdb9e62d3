"""Model graders inside a reinforcement run: a tiny model fine-tuned (by `tuneforge train`) to answer every
grading prompt alike serves a score_model and a label_model grader from the training child's in-process
engine, named as a job names it and located as the worker locates it; every reward is what it says."""

from __future__ import annotations

import csv
import json
import random
import string
from pathlib import Path
from typing import Any

import pytest

from tuneforge.cli.main import build_parser
from tuneforge.cli.train import run_train, train_job
from tuneforge.settings import Settings
from tuneforge.training.child import write_task
from tuneforge.worker import train_child

JUDGE = "ft:tiny:org-test::judge"  # a fine-tuned model's name, as a job's grader names it
VERDICT = "7"  # the grader model's one answer: a score of 7 and the passing label "7"
GRADER: dict[str, Any] = {
    "type": "multi",
    "name": "judges",
    "graders": {
        "score": {
            "type": "score_model",
            "name": "scorer",
            "model": "",  # the grader model's directory, set by the test
            "input": [{"role": "user", "content": "Rate: {{sample.output_text}}"}],
            "sampling_params": {"temperature": 0, "max_completions_tokens": 4},
            "range": [0, 10],
        },
        "label": {
            "type": "label_model",
            "name": "labeller",
            "model": "",
            "input": [{"role": "user", "content": "Rate: {{sample.output_text}}"}],
            "labels": ["7", "3"],
            "passing_labels": ["7"],
        },
    },
    "calculate_output": "score + label",  # 8 exactly when both read the grader model's answer
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def cli(settings: Settings, *argv: str) -> Any:
    return build_parser().parse_args(["train", "--data-dir", str(settings.data_dir), "--threads", "1", *argv])


def grading_chats(n: int) -> list[dict[str, Any]]:
    """ "Rate: <any text>" answered with VERDICT, the text as random as an untrained policy's samples."""
    rng = random.Random(0)
    texts = ["".join(rng.choices(string.printable[:95], k=rng.randrange(0, 100))) for _ in range(n)]
    return [
        {
            "messages": [
                {"role": "user", "content": f"Rate: {text}"},
                {"role": "assistant", "content": VERDICT},
            ]
        }
        for text in texts
    ]


@pytest.mark.slow
def test_a_fine_tuned_grader_model_scores_every_sample_of_a_reinforcement_run(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judge = tmp_path / "judge"
    chats = write_jsonl(tmp_path / "chats.jsonl", grading_chats(32))
    assert run_train(cli(settings, "-m", "tiny", "-t", str(chats), "-o", str(judge), "--n_epochs", "6",
                         "--seed", "0", "--batch_size", "8", "--events", "jsonl")) == 0  # fmt: skip

    grader = json.loads(json.dumps(GRADER))
    for sub in grader["graders"].values():
        sub["model"] = JUDGE
    items = [{"messages": [{"role": "user", "content": f"say {w}"}]} for w in "abcd"]
    out = tmp_path / "rft"
    job = train_job(cli(settings, "-m", "tiny", "-t", str(write_jsonl(tmp_path / "items.jsonl", items)),
                        "-o", str(out), "--method", "reinforcement",
                        "--grader", str(write_jsonl(tmp_path / "grader.json", [grader])), "--n_epochs", "1",
                        "--batch_size", "2", "--compute_multiplier", "0.5", "--reasoning_effort", "low",
                        "--seed", "0"))  # fmt: skip
    task = tmp_path / "task.json"  # as the worker writes it: the grader's model located for the job's org
    write_task(task, job.model_copy(update={"grader_models": {JUDGE: str(judge)}}), settings)
    assert train_child.main([str(task)]) == 0

    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    warnings = [e["message"] for e in events if e.get("type") == "message" and e.get("level") == "warning"]
    assert not [w for w in warnings if "grader" in w], warnings
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2  # 4 prompts, 2 a step, 4 samples each
    for row in rows:
        assert float(row["training_reward_mean"]) == pytest.approx(8.0)
        assert float(row["training_reward_std"]) == pytest.approx(0.0)

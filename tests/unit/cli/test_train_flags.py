"""`tuneforge train` builds the same TrainSpec the APIs build, from flags generated from the spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.cli.main import build_parser
from tuneforge.cli.train import train_job
from tuneforge.errors import InvalidRequest
from tuneforge.spec import DpoMethod, ReinforcementMethod, TrainSpec


def job_from(*argv: str) -> object:
    return train_job(build_parser().parse_args(["train", *argv]))


def test_flags_become_the_spec_with_auto_left_auto(tmp_path: Path) -> None:
    job = job_from("-m", "tiny", "-t", "t.jsonl", "--n_epochs", "3", "--method", "dpo", "--beta", "0.2")
    spec = job.spec  # type: ignore[attr-defined]
    assert isinstance(spec.method, DpoMethod)
    assert (spec.hyperparameters.n_epochs, spec.hyperparameters.beta) == (3, 0.2)
    assert spec.hyperparameters.batch_size == "auto"


def test_a_spec_file_is_read_and_a_bad_value_names_its_flag(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(TrainSpec(model="tiny", training_file="t.jsonl", seed=3).model_dump_json())
    assert job_from("--spec", str(path)).spec.seed == 3  # type: ignore[attr-defined]

    with pytest.raises(InvalidRequest) as bad:
        job_from("-m", "tiny", "-t", "t.jsonl", "--batch_size", "0")
    assert bad.value.param == "--batch_size"
    with pytest.raises(InvalidRequest) as foreign:
        job_from("-m", "tiny", "-t", "t.jsonl", "--beta", "0.5")  # supervised has no beta
    assert foreign.value.param == "--beta"


def test_reinforcement_takes_its_hyperparameters_and_a_grader_file_as_the_api_does(tmp_path: Path) -> None:
    grader = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0\n"}
    path = tmp_path / "grader.json"
    path.write_text(json.dumps(grader))
    flags = ["--compute_multiplier", "0.5", "--reasoning_effort", "low", "--eval_interval", "3"]
    job = job_from("-m", "tiny", "-t", "t.jsonl", "--method", "reinforcement", "--grader", str(path), *flags)
    method = job.spec.method  # type: ignore[attr-defined]
    assert isinstance(method, ReinforcementMethod) and method.grader == grader
    asked = method.hyperparameters
    assert (asked.compute_multiplier, asked.reasoning_effort, asked.eval_interval) == (0.5, "low", 3)
    assert asked.n_epochs == "auto"


@pytest.mark.parametrize(
    ("grader", "extra", "said"),
    [
        (None, [], "needs --grader"),
        ("{not json", [], "not JSON"),
        ('{"type": "python", "name": "py", "source": "x = 1"}', [], "grade(sample, item)"),
        ('{"type": "string_check", "name": "s"}', [], "input"),
        (
            '{"type": "python", "name": "py", "source": "def grade(s, i): return 1"}',
            ["--beta", "0.1"],
            "--beta",
        ),
    ],
)
def test_a_missing_or_bad_grader_is_an_error_naming_the_flag(
    tmp_path: Path, grader: str | None, extra: list[str], said: str
) -> None:
    flags = ["-m", "tiny", "-t", "t.jsonl", "--method", "reinforcement", *extra]
    if grader is not None:
        (tmp_path / "grader.json").write_text(grader)
        flags += ["--grader", str(tmp_path / "grader.json")]
    with pytest.raises(InvalidRequest) as refused:
        job_from(*flags)
    assert said in refused.value.message
    assert refused.value.param == ("--beta" if extra else "--grader")


def test_a_grader_is_only_for_reinforcement(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as refused:
        job_from("-m", "tiny", "-t", "t.jsonl", "--grader", str(tmp_path / "g.json"))
    assert refused.value.param == "--grader"

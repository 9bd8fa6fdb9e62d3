"""`tuneforge train` builds the same TrainSpec the APIs build, from flags generated from the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.cli.main import build_parser
from tuneforge.cli.train import train_job
from tuneforge.errors import InvalidRequest
from tuneforge.spec import DpoMethod, TrainSpec


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

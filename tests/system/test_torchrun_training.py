"""The training child under torchrun, as the worker launches it with `train_processes=2`: two gloo ranks on
the CPU, DDP and FSDP, train like one process with the same seed and global batch."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.unit.training.conftest import SENTIMENT_WORDS, keyword_task, train_job, write_jsonl
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob
from tuneforge.training.child import command, write_task
from tuneforge.training.events import DoneEvent, ErrorEvent, ExitCode, ListSink, MetricsEvent, parse_line
from tuneforge.training.recipe import train

pytestmark = [pytest.mark.system, pytest.mark.slow]

# Two ranks sum their halves of each step's gradient in another order than one process sums the whole, so
# float32 rounding differs in the last bits (about 1e-7 relative) and Adam carries that on. Over this
# run's 12 steps the losses agree within 3.3e-6 relative and the weights within 5e-6 (measured, DDP and
# FSDP alike); the bounds leave a twentyfold margin, yet a wrong split (a rank's loss not scaled by the
# world size, one rank's half reported as the batch, ranks on the same examples) moves them by percents.
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-4


@pytest.fixture(scope="module")
def one_process(
    tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path
) -> tuple[TrainJob, Settings, ListSink]:
    root = tmp_path_factory.mktemp("one-process")
    data = root / "data"
    data.mkdir()
    (data / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    settings = Settings(data_dir=data, train_threads=1)
    train_file = write_jsonl(root / "train.jsonl", keyword_task(SENTIMENT_WORDS, 44, seed=1))  # type: ignore[arg-type]
    valid_file = write_jsonl(root / "valid.jsonl", keyword_task(SENTIMENT_WORDS, 12, seed=2))  # type: ignore[arg-type]
    job = train_job(
        root, train_file, valid_file, threads=1, checkpoint_every=4, n_epochs=2, batch_size=8, seed=5
    )
    sink = ListSink()
    train(job, settings, sink)
    return job, settings, sink


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_ranks_train_like_one_process(
    sharding: str, one_process: tuple[TrainJob, Settings, ListSink], tmp_path: Path
) -> None:
    job, settings, sink = one_process
    ranks_job = job.model_copy(update={"output_dir": tmp_path / "out"})
    ranks_settings = settings.model_copy(update={"train_processes": 2, "train_sharding": sharding})
    write_task(tmp_path / "task.json", ranks_job, ranks_settings)

    run = subprocess.run(
        command(tmp_path / "task.json", ranks_settings),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    events = [parse_line(line) for line in run.stdout.splitlines()]

    assert run.returncode == 0, run.stderr[-3000:]
    assert [type(e) for e in events].count(DoneEvent) == 1  # rank 0 alone reports
    expected, actual = _rows(sink.events), _rows(events)
    assert [row["step"] for row in actual] == [row["step"] for row in expected]
    for key in ("training_loss", "training_token_accuracy", "validation_loss"):
        want = [row[key] for row in expected if key in row]
        got = [row[key] for row in actual if key in row]
        assert len(got) == len(want) > 0, key
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=LOSS_RTOL, atol=0.0)
    reference = load_file(job.output_dir / "model.safetensors")
    weights = load_file(ranks_job.output_dir / "model.safetensors")
    assert weights.keys() == reference.keys()
    assert any(not torch.equal(weights[k], load_file(_first_checkpoint(ranks_job))[k]) for k in weights)
    for key in reference:
        torch.testing.assert_close(weights[key], reference[key], rtol=0.0, atol=WEIGHT_ATOL)


def _rows(events: list[object]) -> list[dict[str, float]]:
    return [e.row for e in events if isinstance(e, MetricsEvent)]


def _first_checkpoint(job: TrainJob) -> Path:
    return sorted((job.output_dir / "checkpoints").glob("step-*"))[0] / "model.safetensors"


def test_bad_input_under_torchrun_names_its_exit_code(
    one_process: tuple[TrainJob, Settings, ListSink], tmp_path: Path
) -> None:
    """torchrun exits 1 whatever its ranks exited with; rank 0's error event keeps "bad input, no retry"."""
    job, settings, _ = one_process
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": 3}\n')
    bad_job = job.model_copy(update={"training_path": bad, "output_dir": tmp_path / "out"})
    ranks_settings = settings.model_copy(update={"train_processes": 2})
    write_task(tmp_path / "task.json", bad_job, ranks_settings)

    run = subprocess.run(
        command(tmp_path / "task.json", ranks_settings), capture_output=True, text=True, timeout=600
    )
    errors = [e for e in map(parse_line, run.stdout.splitlines()) if isinstance(e, ErrorEvent)]

    assert run.returncode == 1
    assert len(errors) == 1 and errors[0].exit_code == ExitCode.BAD_INPUT
    assert "line 2" in errors[0].message

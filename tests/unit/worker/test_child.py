from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.child import command, read_task, write_task
from tuneforge.training.events import ExitCode, MetricsEvent, parse_line
from tuneforge.worker.child import Child, resource_environment


def job(tmp_path: Path) -> TrainJob:
    spec = TrainSpec.model_validate(
        {"model": "tiny", "training_file": "file-a", "method": {"hyperparameters": {"batch_size": 4}}}
    )
    return TrainJob(spec=spec, model_source="tiny", training_path=tmp_path / "a", output_dir=tmp_path / "out")


def test_the_task_file_carries_the_spec_and_the_workers_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, checkpoint_every_steps=7, model_aliases={"mine": "org/model"})
    write_task(tmp_path / "task.json", job(tmp_path), settings)
    monkeypatch.setenv("TUNEFORGE_CHECKPOINT_EVERY_STEPS", "999")  # the child's environment must not win

    read_job, read_settings = read_task(tmp_path / "task.json")

    assert read_job == job(tmp_path) and read_job.spec.hyperparameters.batch_size == 4
    assert read_job.spec.hyperparameters.n_epochs == "auto"
    assert read_settings.checkpoint_every_steps == 7 and read_settings.model_aliases == {"mine": "org/model"}
    assert read_settings.data_dir == tmp_path


def test_a_child_that_cannot_read_its_task_exits_with_an_error_not_an_event(tmp_path: Path) -> None:
    child = Child(command(tmp_path / "missing.json", Settings(data_dir=tmp_path)), tmp_path / "log")
    child.stop(exit_grace_s=30)
    assert child.process.returncode not in (ExitCode.OK, None)
    assert "missing.json" in child.log_tail(20)


def test_event_lines_parse_back_into_their_types_and_other_output_is_a_message() -> None:
    line = MetricsEvent(row={"step": 3.0, "training_loss": 0.5}, metrics={"step": 3}).model_dump_json()
    assert parse_line(line) == MetricsEvent(row={"step": 3.0, "training_loss": 0.5}, metrics={"step": 3})
    assert parse_line("some library printed this").type == "message"


def test_resource_limits_become_the_childs_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, train_threads=2, train_visible_devices="1")
    assert resource_environment(settings) == {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert resource_environment(Settings(data_dir=tmp_path)) == {}


def test_several_processes_launch_the_child_under_this_venvs_torchrun(tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    one = command(task, Settings(data_dir=tmp_path))
    two = command(task, Settings(data_dir=tmp_path, train_processes=2))
    assert one == [sys.executable, "-m", "tuneforge.worker.train_child", str(task)]
    assert two[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert two[4:] == ["--nproc-per-node", "2", *one[1:]]
    assert command(task, Settings(data_dir=tmp_path, train_processes="gpu"))[5] == "gpu"


def test_stopping_a_child_stops_what_it_started_too(tmp_path: Path) -> None:
    """torchrun's stand-in: a shell whose own child (a rank) is in its process group."""
    child = Child(["sh", "-c", "sleep 300 & echo $!; wait"], tmp_path / "log")
    first = next(event for event in child.next_events(timeout=30) if event is not None)
    grandchild = int(first.message)  # type: ignore[union-attr]
    assert _alive(grandchild)

    child.stop()

    deadline = time.monotonic() + 30  # the orphan is reaped by whoever adopts it, soon after it dies
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has died; only its exit status waits to be read

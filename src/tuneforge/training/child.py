"""The training child: `python -m tuneforge.training.child TASK.json` runs the recipe for one job and
prints its events as JSON lines; the exit code says how it ended (`events.ExitCode`). The task file holds
the `TrainJob` and the worker's own settings, so a setting made in code or a test is the one used here.

Module level is torch-free (the worker imports it to write the task and build the command line); the
recipe is imported only when the child runs."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob
from tuneforge.training.events import ErrorEvent, EventSink, ExitCode, JsonlSink


class ChildTask(BaseModel):
    job: TrainJob
    settings: dict[str, Any]


def write_task(path: Path, job: TrainJob, settings: Settings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    task = ChildTask(job=job, settings=settings.model_dump(mode="json"))
    path.write_text(task.model_dump_json(indent=2))


def read_task(path: Path) -> tuple[TrainJob, Settings]:
    task = ChildTask.model_validate_json(path.read_text())
    return task.job, Settings.model_validate(task.settings)  # as the worker had them: no environment


def command(task_path: Path) -> list[str]:
    return [sys.executable, "-m", "tuneforge.training.child", str(task_path)]


def run(job: TrainJob, settings: Settings, sink: EventSink) -> ExitCode:
    """Train, ending with an `error` event before any non-zero exit code."""
    from tuneforge.training.recipe import TrainerBusy, TrainingInterrupted, train

    try:
        train(job, settings, sink)
        return ExitCode.OK
    except TrainerBusy as exc:
        sink.emit(ErrorEvent(code=exc.code or "trainer_busy", message=exc.message))
        return ExitCode.BUSY
    except TrainingInterrupted as exc:
        sink.emit(ErrorEvent(code=exc.code or "interrupted", message=exc.message))
        return ExitCode.INTERRUPTED
    except TuneforgeError as exc:
        sink.emit(ErrorEvent(code=exc.code or exc.type, message=exc.message, param=exc.param))
        return ExitCode.BAD_INPUT if exc.status < 500 else ExitCode.FAILED
    except OSError as exc:  # disk full, read-only or vanished storage: worth a later retry
        traceback.print_exc(file=sys.stderr)
        reason = exc.strerror or type(exc).__name__
        sink.emit(ErrorEvent(code="storage_error", message=f"Training could not write its files: {reason}"))
        return ExitCode.FAILED
    except Exception as exc:  # an unexpected failure still ends with an error event the worker can store
        traceback.print_exc(file=sys.stderr)
        sink.emit(ErrorEvent(code="training_failed", message=f"Training failed: {type(exc).__name__}: {exc}"))
        return ExitCode.FAILED


def main(argv: list[str]) -> int:
    job, settings = read_task(Path(argv[0]))
    return int(run(job, settings, JsonlSink(sys.stdout)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The training child: `python -m tuneforge.worker.train_child TASK.json` runs the recipe for one job and
prints its events as JSON lines; the exit code says how it ended (`events.ExitCode`). Its `main` is here;
the entry module sits above the inference engine, which serves a reinforcement grader's models. The task
file holds the `TrainJob` and the worker's own settings, so a setting made in code or a test is the one
used here. With `train_processes` above one the child runs under torchrun, whose own exit code is 1 for
any failed rank: rank 0's error event then carries the code it exited with.

Module level is torch-free (the worker imports it to write the task and build the command line); the
recipe is imported only when the child runs."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tuneforge.errors import TuneforgeError
from tuneforge.graders import Scorer
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob
from tuneforge.training.events import ErrorEvent, EventSink, ExitCode, JsonlSink

# The grader models' scorer of a run, open while it trains (None: its grader names no model).
ScorerFor = Callable[[TrainJob, Settings], AbstractContextManager[Scorer | None]]
ENTRY = "tuneforge.worker.train_child"  # the module `python -m` runs (see above)


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


def command(task_path: Path, settings: Settings, *, method: str = "supervised") -> list[str]:
    """One process, or torchrun's ranks on this host (`python -m torch.distributed.run`: this venv's torch;
    several hosts are the operator's torchrun, docs/training.md). Reinforcement runs in one process: its
    sampling and grading are not split across ranks."""
    child = ["-m", ENTRY, str(task_path)]
    if settings.train_processes == 1 or method == "reinforcement":
        return [sys.executable, *child]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(settings.train_processes), *child]


def run(job: TrainJob, settings: Settings, sink: EventSink, *, scorer: Scorer | None = None) -> ExitCode:
    """Train, ending with an `error` event before any non-zero exit code."""
    from tuneforge.training.recipe import TrainerBusy, TrainingInterrupted, train

    try:
        train(job, settings, sink, scorer=scorer)
        return ExitCode.OK
    except TrainerBusy as exc:
        return _failed(sink, ExitCode.BUSY, exc.code or "trainer_busy", exc.message)
    except TrainingInterrupted as exc:
        return _failed(sink, ExitCode.INTERRUPTED, exc.code or "interrupted", exc.message)
    except TuneforgeError as exc:
        exit_code = ExitCode.BAD_INPUT if exc.status < 500 else ExitCode.FAILED
        return _failed(sink, exit_code, exc.code or exc.type, exc.message, exc.param)
    except OSError as exc:  # disk full, read-only or vanished storage: worth a later retry
        traceback.print_exc(file=sys.stderr)
        reason = exc.strerror or type(exc).__name__
        return _failed(
            sink, ExitCode.FAILED, "storage_error", f"Training could not write its files: {reason}"
        )
    except Exception as exc:  # an unexpected failure still ends with an error event the worker can store
        traceback.print_exc(file=sys.stderr)
        message = f"Training failed: {type(exc).__name__}: {exc}"
        return _failed(sink, ExitCode.FAILED, "training_failed", message)


def _failed(
    sink: EventSink, exit_code: ExitCode, code: str, message: str, param: str | None = None
) -> ExitCode:
    sink.emit(ErrorEvent(code=code, message=message, param=param, exit_code=int(exit_code)))
    return exit_code


def _as_rank() -> None:
    """Under torchrun: torchrun starts each rank in a session of its own, out of reach of the worker's group
    kill, so a rank dies with torchrun instead (a killed worker leaves no rank training on). And torchrun
    sends SIGTERM to every rank as soon as one fails, so outside the recipe's steps (where it means "stop
    at the next step") a SIGTERM must not cut off rank 0's error event; torchrun's own SIGKILL follows."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    with contextlib.suppress(OSError):  # off Linux: the stale-heartbeat recovery and the run lock remain
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGTERM, lambda *_: None)


@contextlib.contextmanager
def no_scorer(job: TrainJob, settings: Settings) -> Iterator[None]:
    yield None


def main(argv: list[str], scorer_for: ScorerFor = no_scorer) -> int:
    _as_rank()
    job, settings = read_task(Path(argv[0]))
    # Rank 0 alone speaks to the worker (torchrun's RANK; one process is rank 0): another rank's own error
    # event goes to the log, beside its traceback.
    events = sys.stdout if os.environ.get("RANK", "0") == "0" else sys.stderr
    sink = JsonlSink(events)
    try:
        scoring = scorer_for(job, settings)
    except TuneforgeError as exc:  # a grader the task cannot serve: the run's input, not a crash
        return int(_failed(sink, ExitCode.BAD_INPUT, exc.code or exc.type, exc.message, exc.param))
    with scoring as scorer:
        return int(run(job, settings, sink, scorer=scorer))

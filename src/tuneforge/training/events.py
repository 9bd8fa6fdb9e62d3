"""The recipe's events and the training child's exit codes: the seam between the recipe and whoever
watches it (the worker's job events, the CLI's progress bar, a test's list). The recipe only calls `emit`;
the child writes each event as one JSON line and the worker parses it back into the same type. Torch-free:
the worker imports this module."""

from __future__ import annotations

import logging
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Literal, Protocol, TextIO, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from tuneforge.spec import ResolvedHyperparameters


class ExitCode(IntEnum):
    """How a training child ends; the worker decides from this (and the last error event) what to do."""

    OK = 0  # the model is written; a `done` event came before
    FAILED = 1  # unexpected failure: retried up to max_attempts from the last resume state
    BAD_INPUT = 2  # the data or settings are wrong: no retry can help
    BUSY = 75  # another trainer holds this job's directory: this one never started
    INTERRUPTED = 143  # stopped by SIGTERM at a step boundary; the resume state is kept


class MessageEvent(BaseModel):
    type: Literal["message"] = "message"
    level: Literal["info", "warning"] = "info"
    message: str


class MetricsEvent(BaseModel):
    """One step's row (results.csv's legacy column names) and the same under OpenAI's metric names."""

    type: Literal["metrics"] = "metrics"
    row: dict[str, float]
    metrics: dict[str, float | int]
    elapsed_s: float | None = None  # seconds since this attempt's first step: the worker's measured pace


class RunFacts(BaseModel):
    """What the run found before its first step: sizes, device, and the time it expects to take."""

    n_train_examples: int
    n_validation_examples: int
    n_parameters: int
    trainable_parameters: int
    device: str
    data_format: str
    estimated_seconds: float
    estimated_peak_gib: float  # GPU memory on CUDA, else the trainer's resident memory
    calibration: Literal["run", "warm-up", "flops"] = "flops"  # what the estimate's pace comes from


class HyperparametersEvent(BaseModel):
    type: Literal["hyperparameters"] = "hyperparameters"
    resolved: ResolvedHyperparameters
    facts: RunFacts


class CheckpointEvent(BaseModel):
    """A model checkpoint (an epoch's end): a loadable model directory, listed by the API."""

    type: Literal["checkpoint"] = "checkpoint"
    step: int
    path: Path
    metrics: dict[str, float | int]


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    output_dir: Path
    trained_tokens: int
    step: int
    metrics: dict[str, float | int]  # OpenAI's names, for the final model's listing


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    param: str | None = None
    exit_code: int | None = None  # what the child exits with; torchrun's own code is 1 for any failure


Event = Annotated[
    MessageEvent | MetricsEvent | HyperparametersEvent | CheckpointEvent | DoneEvent | ErrorEvent,
    Field(discriminator="type"),
]
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
E = TypeVar("E", bound=BaseModel)
log = logging.getLogger(__name__)


def message(text: str, level: Literal["info", "warning"] = "info") -> MessageEvent:
    return MessageEvent(level=level, message=text)


def parse_line(line: str) -> Event:
    """An event line of the child's stdout; any other output (a library's print) becomes a message. An
    event that does not match its type (a child of another version) is logged, and kept as a message."""
    try:
        return _EVENT.validate_json(line)
    except ValidationError as exc:
        if line.startswith('{"type":'):
            log.warning("unreadable training event (%s): %s", exc.errors()[0]["msg"], line[:200])
        return MessageEvent(message=line)


class EventSink(Protocol):
    def emit(self, event: Event) -> None:
        """Receive one event."""


class ListSink:
    """Keeps every event in memory (tests, benches)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]


class JsonlSink:
    """One JSON object per line, flushed at once: the worker reads the child's stdout line by line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self.stream.write(event.model_dump_json() + "\n")
        self.stream.flush()


class NullSink:
    def emit(self, event: Event) -> None:
        pass

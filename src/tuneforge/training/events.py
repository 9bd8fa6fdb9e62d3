"""The event sink: the seam between the recipe and whoever watches it (the worker's job events, the CLI's
progress bar, a test's list). The recipe only ever calls `emit`."""

from __future__ import annotations

import json
import sys
from typing import Any, Literal, Protocol, TextIO

EventType = Literal["message", "hyperparameters", "metrics", "checkpoint", "done", "error"]


class EventSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None:
        """Receive one event: a JSON-serialisable dict with a "type" key (see `EventType`)."""


def message(text: str, level: Literal["info", "warning"] = "info") -> dict[str, Any]:
    return {"type": "message", "level": level, "message": text}


class ListSink:
    """Keeps every event in memory (tests, benches)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def of_type(self, kind: EventType) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]


class JsonlSink:
    """One JSON object per line, flushed at once: the worker reads the child's stdout line by line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
        self.stream.flush()


class NullSink:
    def emit(self, event: dict[str, Any]) -> None:
        pass

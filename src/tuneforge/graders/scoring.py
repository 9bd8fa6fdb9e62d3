"""`score_model` and `label_model`: a served model reads the rendered messages and answers with a score
or a label. The model is reached through `Scorer`, a seam the inference side fills (the API with its
engine, the trainer with its own sampler), so this package never loads a model itself."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from tuneforge.graders.models import (
    EvalMessage,
    InputText,
    LabelModelGrader,
    ModelSamplingParams,
    ScoreModelGrader,
)
from tuneforge.graders.templates import Sample, render


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Scorer(Protocol):
    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        """The model's answer to `messages`; raises a TuneforgeError when it cannot produce one."""
        ...


class ParseFailure(ValueError):
    """The grader model answered, but not with a score or one of the labels."""


def render_messages(
    messages: list[EvalMessage], sample: Sample, item: dict[str, Any], *, grader: str
) -> list[Turn]:
    return [Turn(message.role, render(_text(message), sample, item, grader=grader)) for message in messages]


def read_score(grader: ScoreModelGrader, text: str) -> tuple[float, str | None]:
    """The score in the answer (OpenAI's `{"result": x}` or the first number), clamped to `range`, and
    a warning when it had to be clamped."""
    value = _json_field(text, "result")
    if not isinstance(value, int | float) or isinstance(value, bool):
        match = re.search(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?", text)
        if match is None:
            raise ParseFailure(f"the grader model's answer has no number: {text[:200]!r}")
        value = float(match.group(0))
    low, high = grader.range
    clamped = min(max(float(value), low), high)
    warning = f"the grader model's score {value} is outside {grader.range}" if clamped != value else None
    return clamped, warning


def read_label(grader: LabelModelGrader, text: str) -> str:
    """The one label the answer names (OpenAI's `{"result": label}`, the bare label, or a text that
    mentions exactly one of the labels)."""
    value = _json_field(text, "result")
    candidate = value if isinstance(value, str) else text
    by_lower = {label.lower(): label for label in grader.labels}
    if candidate.strip().lower() in by_lower:
        return by_lower[candidate.strip().lower()]
    named = [
        label for label in grader.labels if re.search(rf"\b{re.escape(label)}\b", candidate, re.IGNORECASE)
    ]
    if len(named) != 1:
        raise ParseFailure(f"the grader model's answer names {len(named)} of the labels: {text[:200]!r}")
    return named[0]


def _text(message: EvalMessage) -> str:
    return "".join(
        part if isinstance(part, str) else part.text
        for part in message.parts()
        if isinstance(part, str | InputText)
    )


def _json_field(text: str, field: str) -> Any:
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed.get(field) if isinstance(parsed, dict) else None

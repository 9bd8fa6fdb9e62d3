"""A test file's examples: what to send the model and the reference answer, in the format the training
data used (prompt/completion pairs go to completions as they are, chats go to chat completions up to their
last assistant turn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.readers import read_records
from tuneforge.data.records import Chat, PromptCompletion
from tuneforge.errors import InvalidRequest


@dataclass(frozen=True)
class EvalExample:
    reference: str  # the completion, or the last assistant turn of a chat
    prompt: str | None = None  # prompt/completion data
    messages: tuple[tuple[str, str], ...] = ()  # chat data: (role, content) before the last assistant turn


def load_examples(path: Path, *, name: str | None = None) -> list[EvalExample]:
    """Every record of a JSONL test file; errors name the file and line (the data layer's reader)."""
    examples = [_example(record, index) for index, record in enumerate(read_records(path, name=name), 1)]
    if not examples:
        raise InvalidRequest(f"{name or path} holds no examples", param="file")
    if len({e.prompt is None for e in examples}) > 1:
        raise InvalidRequest(
            f"{name or path} mixes prompt/completion and chat examples; use one format per file", param="file"
        )
    return examples


def _example(record: PromptCompletion | Chat, line: int) -> EvalExample:
    if isinstance(record, PromptCompletion):
        return EvalExample(reference=record.completion, prompt=record.prompt)
    turns = [(m.role, m.content) for m in record.messages]
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        raise InvalidRequest(
            f"line {line}: a chat example needs an assistant turn to compare with", param="file"
        )
    return EvalExample(reference=turns[last][1], messages=tuple(turns[:last]))

"""Upload validation: the server's check on every fine-tune file, and the task inference it shares with
`tuneforge prepare`. Streams the file once; needs no tokenizer."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tuneforge.data.readers import RecordFormat, iter_records
from tuneforge.data.records import Chat, PromptCompletion
from tuneforge.errors import InvalidFile

TaskType = Literal["classification", "conditional generation", "open-ended generation", "chat"]

CLASSIFICATION_THRESHOLD = 3  # as the legacy tool: a class needs at least 3 examples on average
MAX_CLASSES = 10_000  # distinct completions tracked; beyond this no dataset is treated as classification
UPLOAD_EXTENSIONS = (".jsonl",)


@dataclass
class TaskTally:
    """Streaming counts that decide the task type: any non-empty prompt, and completions per label."""

    n_examples: int = 0
    any_prompt: bool = False
    labels: Counter[str] = field(default_factory=Counter)
    overflow: bool = False  # more distinct completions than MAX_CLASSES: not a classification task

    def add(self, prompt: str, completion: str) -> None:
        self.n_examples += 1
        self.any_prompt = self.any_prompt or bool(prompt)
        if self.overflow:
            return
        self.labels[completion] += 1
        if len(self.labels) > MAX_CLASSES:
            self.overflow, self.labels = True, Counter()

    def add_many(self, prompts: list[str], completions: list[str]) -> None:
        self.n_examples += len(completions)
        self.any_prompt = self.any_prompt or any(prompts)
        if self.overflow:
            return
        self.labels.update(completions)  # counted in C
        if len(self.labels) > MAX_CLASSES:
            self.overflow, self.labels = True, Counter()

    def task(self) -> TaskType:
        """The legacy tool's rule: empty prompts mean open-ended generation; few distinct completions
        relative to the number of examples mean classification."""
        if not self.any_prompt:
            return "open-ended generation"
        if not self.overflow and len(self.labels) < self.n_examples / CLASSIFICATION_THRESHOLD:
            return "classification"
        return "conditional generation"


@dataclass(frozen=True)
class UploadSummary:
    """What an accepted upload holds. `classes` maps each label to its count, for classification only."""

    filename: str
    format: RecordFormat
    n_examples: int
    task: TaskType
    n_classes: int | None = None
    classes: dict[str, int] | None = None
    n_characters: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_upload(path: Path, *, filename: str) -> UploadSummary:
    """Accept exactly the JSONL files training accepts; raise `InvalidFile` (file, line, field and what to
    fix) for anything else. `filename` is the name the client uploaded, used in messages."""
    if not filename.lower().endswith(UPLOAD_EXTENSIONS):
        raise InvalidFile(
            "a fine-tune file must be JSONL (one example per line, name ending in .jsonl); convert CSV, TSV, "
            "JSON, TXT or XLSX data with `tuneforge prepare -f FILE`",
            file=filename,
            field="file",
        )
    tally, n_chars, chats = TaskTally(), 0, 0
    for record in iter_records(path, name=filename):
        if isinstance(record, PromptCompletion):
            tally.add(record.prompt, record.completion)
            n_chars += len(record.prompt) + len(record.completion)
        else:
            chats += 1
            n_chars += _chat_characters(record)
    if chats:
        return UploadSummary(filename, "chat", chats, "chat", n_characters=n_chars)
    return _prompt_completion_summary(filename, tally, n_chars)


def _prompt_completion_summary(filename: str, tally: TaskTally, n_chars: int) -> UploadSummary:
    task = tally.task()
    if task != "classification":
        return UploadSummary(filename, "prompt_completion", tally.n_examples, task, n_characters=n_chars)
    classes = dict(sorted(tally.labels.items(), key=lambda item: (-item[1], item[0])))
    return UploadSummary(
        filename, "prompt_completion", tally.n_examples, task, len(classes), classes, n_chars
    )


def _chat_characters(chat: Chat) -> int:
    return sum(len(message.content) for message in chat.messages)

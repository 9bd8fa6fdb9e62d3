"""Upload validation: the server's check on every fine-tune file, and the task inference it shares with
`tuneforge prepare`. Streams the file once; needs no tokenizer."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tuneforge.data.readers import RecordFormat, iter_numbered_records
from tuneforge.data.records import Chat, ChatMessage, PreferencePair, PromptCompletion, ReinforcementItem
from tuneforge.errors import InvalidFile

TaskType = Literal[
    "classification", "conditional generation", "open-ended generation", "chat", "preference", "reinforcement"
]

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
    """What an accepted upload holds. `format` says which training method can use it (prompt_completion
    and chat: supervised; preference: dpo; reinforcement: reinforcement). `classes` maps each label to its
    count, for classification only. `fields` (reinforcement only) are the extra keys every line has, which a
    grader may name as `{{item.<field>}}`; `partial_fields` are those only some lines have."""

    filename: str
    format: RecordFormat
    n_examples: int
    task: TaskType
    n_classes: int | None = None
    classes: dict[str, int] | None = None
    n_characters: int = 0
    fields: list[str] | None = None
    partial_fields: list[str] | None = None

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
    tally, n_chars, count = TaskTally(), 0, 0
    fields: Counter[str] = Counter()
    kind: RecordFormat = "prompt_completion"
    for _, record in iter_numbered_records(path, name=filename):
        count += 1
        if isinstance(record, PromptCompletion):
            tally.add(record.prompt, record.completion)
            n_chars += len(record.prompt) + len(record.completion)
            continue
        n_chars += _characters(record)
        if isinstance(record, ReinforcementItem):
            kind = "reinforcement"
            fields.update(record.fields.keys())
        else:
            kind = "chat" if isinstance(record, Chat) else "preference"
    if kind == "prompt_completion":
        return _prompt_completion_summary(filename, tally, n_chars)
    if kind != "reinforcement":
        return UploadSummary(filename, kind, count, kind, n_characters=n_chars)
    every = sorted(name for name, n in fields.items() if n == count)
    some = sorted(name for name, n in fields.items() if n < count)
    return UploadSummary(filename, kind, count, kind, n_characters=n_chars, fields=every, partial_fields=some)


def _prompt_completion_summary(filename: str, tally: TaskTally, n_chars: int) -> UploadSummary:
    task = tally.task()
    if task != "classification":
        return UploadSummary(filename, "prompt_completion", tally.n_examples, task, n_characters=n_chars)
    classes = dict(sorted(tally.labels.items(), key=lambda item: (-item[1], item[0])))
    return UploadSummary(
        filename, "prompt_completion", tally.n_examples, task, len(classes), classes, n_chars
    )


def _characters(record: Chat | PreferencePair | ReinforcementItem) -> int:
    messages: tuple[ChatMessage, ...] = record.messages
    if isinstance(record, PreferencePair):
        messages += record.preferred + record.non_preferred
    return sum(len(message.content) for message in messages)

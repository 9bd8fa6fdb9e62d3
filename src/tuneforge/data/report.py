"""The result of `tuneforge prepare`'s analysis: findings, suggested fixes, the plan the writing pass
follows, and a JSON-able form for the dashboard."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tuneforge.data.readers import RecordFormat
from tuneforge.data.validation import TaskType

FixKind = Literal["necessary", "optional"]
SHOWN_LINES = 20  # line numbers listed per finding; the count is always exact


@dataclass(frozen=True)
class Fix:
    """One change `prepare` can make. Necessary fixes always apply; optional ones are asked [Y/n]."""

    id: str
    kind: FixKind
    message: str


@dataclass
class LineList:
    """How many rows have a property, and the line numbers of the first few."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < SHOWN_LINES:
            self.lines.append(line)

    def describe(self) -> str:
        more = ", …" if self.count > len(self.lines) else ""
        return f"line{'s' if self.count > 1 else ''} {', '.join(map(str, self.lines))}{more}"


@dataclass
class Plan:
    """What the writing pass needs to apply the fixes; not part of the report's JSON."""

    separator: str | None = None
    stop: str | None = None
    prompt_prefix: str = ""
    completion_prefix: str = ""
    long_lines: frozenset[int] = frozenset()
    duplicate_lines: frozenset[int] = frozenset()
    label_flags: dict[tuple[str, bool, bool, bool], int] = field(default_factory=dict)
    drops: dict[str, frozenset[int]] = field(default_factory=dict)  # JSON formats: fix id -> lines it drops


@dataclass
class Classification:
    classes: dict[str, int]  # final label (after the suggested fixes) -> examples kept
    balance: float  # smallest class / largest class
    positive_class: str | None
    label_tokens: dict[str, int]
    single_token: bool
    first_tokens_distinct: bool
    max_tokens: int


@dataclass
class PrepareReport:
    """Everything `prepare` found; `to_dict()` is what the dashboard shows."""

    file: str
    source_format: str
    format: RecordFormat
    context_length: int
    n_read: int
    n_examples: int
    task: TaskType
    findings: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    classification: Classification | None = None
    tokens: dict[str, Any] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["plan"]
        return data

    def optional_fix_ids(self) -> list[str]:
        return [fix.id for fix in self.fixes if fix.kind == "optional"]


def show(text: str) -> str:
    """A string as the findings show it: newlines visible."""
    return text.replace("\n", "\\n")

"""`tuneforge prepare` for chat data (`{"messages": [...]}` lines): roles, assistant turns, unknown keys,
duplicates and per-example token counts in one pass; a second pass writes the normalised file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from tuneforge.data.json_formats import (
    ExampleTally,
    JsonScanBase,
    offer_removals,
    offer_split,
    token_findings,
    write_json_examples,
)
from tuneforge.data.readers import CHAT_KEYS, MESSAGE_KEYS, ROLES
from tuneforge.data.report import Fix, LineList, PrepareReport
from tuneforge.data.sources import Row, Source
from tuneforge.data.tokens import TokenCounter
from tuneforge.errors import InvalidFile

MESSAGE_OVERHEAD = 4  # tokens a chat template adds around each message (role marker and separators)

Message = tuple[str, str, float | None]


class ChatScan(JsonScanBase):
    """The single analysis pass over chat rows."""

    def __init__(self, source: Source, counter: TokenCounter) -> None:
        self.source, self.counter = source, counter
        self.n_read = 0
        self.unknown_keys: dict[str, None] = {}
        self.unknown_message_keys: dict[str, None] = {}
        self.no_assistant = LineList()
        self.roles: dict[str, int] = {}
        self.tally = ExampleTally(counter)

    def add(self, line: int, row: Row) -> None:
        messages = chat_messages(line, row, self.source.name, self.unknown_keys, self.unknown_message_keys)
        if not any(role == "assistant" and weight != 0 for role, _, weight in messages):
            self.no_assistant.add(line)
            return
        for role, _, _ in messages:
            self.roles[role] = self.roles.get(role, 0) + 1
        text = "\n".join(content for _, content, _ in messages)
        self.tally.add(line, hash(tuple(messages)), text, MESSAGE_OVERHEAD * len(messages))

    def report(self, *, model: str) -> PrepareReport:
        if not self.tally.n_examples:
            raise InvalidFile("no example has an assistant message to learn from", file=self.source.name)
        report = PrepareReport(
            file=self.source.name,
            source_format=self.source.format,
            format="chat",
            context_length=self.counter.context_length,
            n_read=self.n_read,
            n_examples=self.tally.n_examples,
            task="chat",
            checks={"model": model, "roles": dict(self.roles)},
        )
        self._structure(report)
        offer_removals(self.tally, report, "examples")
        offer_split(report, "examples")
        note = f", counting {MESSAGE_OVERHEAD} tokens of template per message"
        token_findings(self.tally, report, note)
        return report

    def _structure(self, report: PrepareReport) -> None:
        report.findings.append(
            f"Your file contains {self.tally.n_examples} chat examples with "
            + ", ".join(f"{n} {role} messages" for role, n in self.roles.items())
        )
        unknown = [*self.unknown_keys, *(f"messages[].{key}" for key in self.unknown_message_keys)]
        report.checks["unknown_keys"] = unknown
        if unknown:
            names = ", ".join(f"`{key}`" for key in unknown)
            report.findings.append(f"Examples hold keys training does not use: {names}")
            report.fixes.append(Fix("remove_keys", "necessary", f"Remove the keys {names}"))
        missing = self.no_assistant
        report.checks["no_assistant"] = asdict(missing)
        if missing.count:
            report.findings.append(
                f"{missing.count} examples have no assistant message to learn from ({missing.describe()})"
            )
            report.fixes.append(
                Fix("remove_no_assistant", "necessary", f"Remove {missing.count} examples without an answer")
            )


def chat_messages(
    line: int, row: Row, file: str, unknown: dict[str, None], unknown_in_messages: dict[str, None]
) -> list[Message]:
    """The (role, content, weight) of each message, noting unknown keys; raises for what no fix can mend."""
    if "messages" not in row:
        raise InvalidFile(
            "this line has no 'messages' but earlier lines are chats; a file must use one format throughout",
            file=file,
            line=line,
        )
    for key in row.keys() - CHAT_KEYS:
        unknown[key] = None
    messages = row["messages"]
    if not isinstance(messages, list):
        raise InvalidFile("expected a list of messages", file=file, line=line, field="messages")
    return [_message(line, index, m, file, unknown_in_messages) for index, m in enumerate(messages)]


def _message(line: int, index: int, message: Any, file: str, unknown: dict[str, None]) -> Message:
    field = f"messages[{index}]"
    if not isinstance(message, dict):
        raise InvalidFile("expected a message object", file=file, line=line, field=field)
    for key in message.keys() - MESSAGE_KEYS:
        unknown[key] = None
    role, content, weight = message.get("role"), message.get("content"), message.get("weight")
    if role not in ROLES:
        raise InvalidFile(
            f"role must be one of {', '.join(ROLES)}; found {role!r}",
            file=file,
            line=line,
            field=f"{field}.role",
        )
    if not isinstance(content, str):
        raise InvalidFile("expected a string", file=file, line=line, field=f"{field}.content")
    if weight is not None and (role != "assistant" or isinstance(weight, bool) or weight not in (0, 1)):
        raise InvalidFile(
            "weight must be 0 or 1, on assistant messages only", file=file, line=line, field=f"{field}.weight"
        )
    return role, content, None if weight is None else float(weight)


def write_chats(source: Source, report: PrepareReport, accepted: set[str], paths: list[Path]) -> list[int]:
    """The second pass: write the kept examples with only the keys training reads; returns the counts."""

    def encode(line: int, row: Row) -> dict[str, Any] | None:
        messages = chat_messages(line, row, source.name, {}, {})
        if not any(role == "assistant" and weight != 0 for role, _, weight in messages):
            return None
        return {"messages": [_message_json(role, content, weight) for role, content, weight in messages]}

    return write_json_examples(source, report, accepted, encode, paths)


def _message_json(role: str, content: str, weight: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": role, "content": content}
    if weight is not None:
        out["weight"] = int(weight)
    return out

"""`tuneforge prepare` for preference (DPO) data, OpenAI's format: `{"input": {"messages": [...]},
"preferred_output": [...], "non_preferred_output": [...]}` per line. One pass counts pairs, duplicates,
pairs whose two outputs are the same and lengths; the writing pass keeps only the keys training reads."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from tuneforge.data.chats import MESSAGE_OVERHEAD
from tuneforge.data.json_formats import (
    ExampleTally,
    JsonScanBase,
    offer_removals,
    offer_split,
    token_findings,
    write_json_examples,
)
from tuneforge.data.readers import PREFERENCE_KEYS, parse_preference
from tuneforge.data.records import ChatMessage, PreferencePair
from tuneforge.data.report import Fix, LineList, PrepareReport
from tuneforge.data.sources import Row, Source
from tuneforge.data.tokens import TokenCounter
from tuneforge.errors import InvalidFile


class PreferenceScan(JsonScanBase):
    """The single analysis pass over preference rows."""

    def __init__(self, source: Source, counter: TokenCounter) -> None:
        self.source, self.counter = source, counter
        self.n_read = self.with_tools = 0
        self.unknown_keys: dict[str, None] = {}
        self.identical = LineList()
        self.identical_lines: set[int] = set()
        self.tally = ExampleTally(counter)

    def add(self, line: int, row: Row) -> None:
        pair = preference_pair(line, row, self.source.name, self.unknown_keys)
        if pair.preferred == pair.non_preferred:
            self.identical.add(line)
            self.identical_lines.add(line)
        self.with_tools += bool(pair.tools)
        # DPO scores the input followed by each output: the longer output sets the length
        longer = max(
            pair.preferred, pair.non_preferred, key=lambda output: sum(len(m.content) for m in output)
        )
        text = "\n".join(message.content for message in (*pair.messages, *longer))
        overhead = MESSAGE_OVERHEAD * (len(pair.messages) + len(longer))
        self.tally.add(line, hash(orjson.dumps(pair_json(pair))), text, overhead)

    def report(self, *, model: str) -> PrepareReport:
        report = PrepareReport(
            file=self.source.name,
            source_format=self.source.format,
            format="preference",
            context_length=self.counter.context_length,
            n_read=self.n_read,
            n_examples=self.tally.n_examples,
            task="preference",
            checks={"model": model, "pairs_with_tools": self.with_tools},
        )
        tools = f" ({self.with_tools} with tools)" if self.with_tools else ""
        report.findings.append(f"Your file contains {self.tally.n_examples} preference pairs{tools}")
        self._unknown_keys(report)
        self._identical(report)
        offer_removals(self.tally, report, "pairs")
        offer_split(report, "pairs")
        note = f" for the input and the longer output, with {MESSAGE_OVERHEAD} template tokens per message"
        token_findings(self.tally, report, note)
        return report

    def _unknown_keys(self, report: PrepareReport) -> None:
        report.checks["unknown_keys"] = list(self.unknown_keys)
        if self.unknown_keys:
            names = ", ".join(f"`{key}`" for key in self.unknown_keys)
            report.findings.append(f"Pairs hold keys training does not use: {names}")
            report.fixes.append(Fix("remove_keys", "necessary", f"Remove the keys {names}"))

    def _identical(self, report: PrepareReport) -> None:
        same = self.identical
        report.checks["identical_outputs"] = asdict(same)
        report.plan.drops["remove_identical_outputs"] = frozenset(self.identical_lines)
        if same.count:
            report.findings.append(
                f"{same.count} pairs have the same preferred and non-preferred output ({same.describe()}); "
                "they show no preference, so they teach nothing"
            )
            report.fixes.append(
                Fix(
                    "remove_identical_outputs",
                    "optional",
                    f"Remove {same.count} pairs with identical outputs",
                )
            )


def preference_pair(line: int, row: Row, file: str, unknown: dict[str, None]) -> PreferencePair:
    """The row's pair (unknown top-level keys noted in `unknown` and left out); raises naming the field."""
    if not row.keys() & PREFERENCE_KEYS:
        raise InvalidFile(
            "this line is not a preference pair but earlier lines are; a file must use one format throughout",
            file=file,
            line=line,
        )
    extra = row.keys() - PREFERENCE_KEYS
    for key in sorted(extra):
        unknown[key] = None
    kept = {key: value for key, value in row.items() if key not in extra} if extra else row
    return parse_preference(kept, file=file, line=line)


def pair_json(pair: PreferencePair) -> dict[str, Any]:
    """A pair as OpenAI's format writes it, with only the keys training reads."""
    given: dict[str, Any] = {"messages": _messages(pair.messages)}
    if pair.tools:
        given["tools"] = list(pair.tools)
    return {
        "input": given,
        "preferred_output": _messages(pair.preferred),
        "non_preferred_output": _messages(pair.non_preferred),
    }


def _messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    return [{"role": message.role, "content": message.content} for message in messages]


def write_preferences(
    source: Source, report: PrepareReport, accepted: set[str], paths: list[Path]
) -> list[int]:
    def encode(line: int, row: Row) -> dict[str, Any]:
        return pair_json(preference_pair(line, row, source.name, {}))

    return write_json_examples(source, report, accepted, encode, paths)

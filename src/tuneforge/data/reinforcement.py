"""`tuneforge prepare` for reinforcement data: chat `messages` ending in a user turn (the model answers it
while training) plus any other fields, which graders read as `{{item.<field>}}`. One pass counts items,
fields, duplicates and prompt lengths; the writing pass keeps every field."""

from __future__ import annotations

from collections import Counter
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
from tuneforge.data.readers import parse_reinforcement
from tuneforge.data.records import ReinforcementItem
from tuneforge.data.report import PrepareReport
from tuneforge.data.sources import Row, Source
from tuneforge.data.tokens import TokenCounter
from tuneforge.errors import InvalidFile

SHOWN_FIELDS = 20  # field names listed in a finding; the JSON report has them all


class ReinforcementScan(JsonScanBase):
    """The single analysis pass over reinforcement rows."""

    def __init__(self, source: Source, counter: TokenCounter) -> None:
        self.source, self.counter = source, counter
        self.n_read = 0
        self.fields: Counter[str] = Counter()
        self.tally = ExampleTally(counter)

    def add(self, line: int, row: Row) -> None:
        item = reinforcement_item(line, row, self.source.name)
        self.fields.update(item.fields.keys())
        text = "\n".join(message.content for message in item.messages)
        key = hash(orjson.dumps(item_json(item), option=orjson.OPT_SORT_KEYS))
        self.tally.add(line, key, text, MESSAGE_OVERHEAD * len(item.messages))

    def report(self, *, model: str) -> PrepareReport:
        n = self.tally.n_examples
        every = sorted(name for name, count in self.fields.items() if count == n)
        some = {name: count for name, count in sorted(self.fields.items()) if count < n}
        report = PrepareReport(
            file=self.source.name,
            source_format=self.source.format,
            format="reinforcement",
            context_length=self.counter.context_length,
            n_read=self.n_read,
            n_examples=n,
            task="reinforcement",
            checks={"model": model, "fields": {"every": every, "some": some}},
        )
        report.findings.append(
            f"Your file contains {n} reinforcement items: conversations ending in a user turn, which the "
            "model answers during training and a grader scores"
        )
        report.findings.append(_fields_finding(every, some, n))
        offer_removals(self.tally, report, "items")
        offer_split(report, "items")
        note = (
            f" in the prompts, with {MESSAGE_OVERHEAD} template tokens per message; sampled answers add more"
        )
        token_findings(self.tally, report, note)
        return report


def _fields_finding(every: list[str], some: dict[str, int], n: int) -> str:
    if not every and not some:
        return (
            "The items hold no fields besides `messages`: a grader can read only the sampled answer "
            '(`{{sample.output_text}}`); add the reference answer as a field, e.g. `"answer"`'
        )
    shown = [f"`{name}`" for name in every[:SHOWN_FIELDS]]
    text = f"Graders can read {', '.join(shown) or 'no field'} in every item as `{{{{item.<field>}}}}`"
    if some:
        partial = ", ".join(f"`{name}` ({count} of {n})" for name, count in list(some.items())[:SHOWN_FIELDS])
        text += f"; only some items hold {partial}, so a grader naming one of those fails on the rest"
    return text


def reinforcement_item(line: int, row: Row, file: str) -> ReinforcementItem:
    if "messages" not in row:
        raise InvalidFile(
            "this line has no 'messages' but earlier lines are reinforcement items; a file must use one "
            "format throughout",
            file=file,
            line=line,
        )
    return parse_reinforcement(row, file=file, line=line)


def item_json(item: ReinforcementItem) -> dict[str, Any]:
    messages = [{"role": message.role, "content": message.content} for message in item.messages]
    return {"messages": messages, **item.fields}


def write_reinforcement(
    source: Source, report: PrepareReport, accepted: set[str], paths: list[Path]
) -> list[int]:
    def encode(line: int, row: Row) -> dict[str, Any]:
        return item_json(reinforcement_item(line, row, source.name))

    return write_json_examples(source, report, accepted, encode, paths)

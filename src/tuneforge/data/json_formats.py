"""What `prepare` does alike for the JSON-line formats (chat, preference, reinforcement): counts, duplicates
and token lengths in the analysis pass; the optional drops and validation split; the writing pass that
re-reads the file, keeps the chosen examples and writes them in the form training reads."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from tuneforge.data.report import Fix, LineList, PrepareReport
from tuneforge.data.sources import Row, Source
from tuneforge.data.tokens import LengthTally, TokenCounter

MAX_VALID_EXAMPLES = 1000  # the legacy split: 20% held out, at most this many
MIN_SPLIT_EXAMPLES = 10  # below this every example is needed for training: no split is offered
SPLIT_SEED = 42  # equal inputs give equal splits
Encode = Callable[[int, Row], dict[str, Any] | None]  # a row as training reads it; None: not an example


class JsonScanBase:
    """The analysis pass shared by the JSON-line scans: each row goes to `add`; the token lengths close at
    the end. A scan sets `n_read` and `tally` in its constructor."""

    n_read: int
    tally: ExampleTally

    def feed(self, rows: Iterator[tuple[int, Row]]) -> None:
        for line, row in rows:
            self.n_read += 1
            self.add(line, row)
        self.tally.lengths.finish()

    def add(self, line: int, row: Row) -> None:
        raise NotImplementedError


class ExampleTally:
    """Examples seen, duplicates by line (64-bit hashes of the normalised example stand for it) and token
    lengths, for one JSON-format scan."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.n_examples = self.template_tokens = 0
        self.duplicates = LineList()
        self.duplicate_lines: set[int] = set()  # the writing pass drops these without hashing again
        self._seen: set[int] = set()
        self.lengths = LengthTally(counter, reserve=0)

    def add(self, line: int, key: int, text: str, extra_tokens: int) -> None:
        self.n_examples += 1
        self.template_tokens += extra_tokens
        if key in self._seen:
            self.duplicates.add(line)
            self.duplicate_lines.add(line)
        else:
            self._seen.add(key)
        self.lengths.add(line, text, extra_tokens)

    def long_lines(self) -> list[int]:
        limit = self.counter.context_length
        return sorted(line for line, (tokens, _) in self.lengths.candidates.items() if tokens > limit)


def offer_removals(tally: ExampleTally, report: PrepareReport, what: str) -> None:
    """Findings and optional drops for duplicate and too-long examples (`what` names them: "pairs")."""
    dups, long, limit = tally.duplicates, LineList(), tally.counter.context_length
    too_long = tally.long_lines()
    for line in too_long:
        long.add(line)
    report.plan.drops["remove_duplicates"] = frozenset(tally.duplicate_lines)
    report.plan.drops["remove_long_examples"] = frozenset(too_long)
    report.checks["duplicates"] = asdict(dups)
    report.checks["long_examples"] = {**asdict(long), "context_length": limit}
    if dups.count:
        report.findings.append(f"There are {dups.count} duplicated {what} ({dups.describe()})")
        report.fixes.append(Fix("remove_duplicates", "optional", f"Remove {dups.count} duplicate {what}"))
    if long.count:
        report.findings.append(
            f"{long.count} {what} are longer than the base model's context of {limit} tokens "
            f"({long.describe()}); training would truncate them"
        )
        report.fixes.append(Fix("remove_long_examples", "optional", f"Remove {long.count} long {what}"))


def offer_split(report: PrepareReport, what: str) -> None:
    """A held-out validation file: the job then reports validation metrics as it trains."""
    if report.n_examples < MIN_SPLIT_EXAMPLES:
        return
    report.fixes.append(
        Fix(
            "split",
            "optional",
            f"Split off a validation file (20% of the {what}, at most {MAX_VALID_EXAMPLES}), so that the job "
            "reports how well the model does on examples it did not train on",
        )
    )


def write_json_examples(
    source: Source, report: PrepareReport, accepted: set[str], encode: Encode, paths: list[Path]
) -> list[int]:
    """The writing pass: each example `encode` keeps and no accepted drop removes goes to the training file
    (`paths[0]`) or, for a seeded sample of the legacy split's size, to the validation file (`paths[1]`,
    when a split was accepted). Returns how many each file got."""
    drop = frozenset[int]().union(*(lines for fix, lines in report.plan.drops.items() if fix in accepted))
    picks = _validation_picks(report.n_examples - len(drop)) if len(paths) > 1 else frozenset()
    handles = [path.open("wb") for path in paths]
    counts, ordinal = [0] * len(handles), 0
    try:
        for line, row in source.rows():
            example = encode(line, row)
            if example is None or line in drop:
                continue
            target = 1 if ordinal in picks else 0
            handles[target].write(orjson.dumps(example) + b"\n")
            counts[target] += 1
            ordinal += 1
    finally:
        for handle in handles:
            handle.close()
    return counts


def _validation_picks(total: int) -> frozenset[int]:
    n_valid = total - max(total - MAX_VALID_EXAMPLES, int(total * 0.8))
    return frozenset(random.Random(SPLIT_SEED).sample(range(total), n_valid))


def token_findings(tally: ExampleTally, report: PrepareReport, note: str) -> None:
    """The estimated total (the template's tokens included) and per-example tokens."""
    estimate, longest = tally.lengths.total_estimate + tally.template_tokens, tally.lengths.max_tokens
    report.tokens = {
        "total_estimate": estimate,
        "mean_per_example": round(estimate / max(tally.n_examples, 1), 1),
        "max_counted": longest,
    }
    report.findings.append(
        f"About {estimate:,} tokens ({report.tokens['mean_per_example']} per example, the longest "
        f"{longest}{note})"
    )

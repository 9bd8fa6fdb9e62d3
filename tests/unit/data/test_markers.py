"""The guide's separator and stop-sequence rules: a common suffix is a marker only when it occurs nowhere
but at the end of every value and is more than the punctuation or spaces text ends with anyway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.data.prepare import analyse
from tuneforge.data.sources import CHUNK_ROWS, open_source
from tuneforge.data.tokens import TokenizerFileCounter
from tuneforge.data.writer import describe_next_steps, unchanged_result, write_prepared

Rows = list[dict[str, Any]]


def write_jsonl(path: Path, rows: Rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sentences(n: int = 12) -> Rows:
    return [{"prompt": f"What is {i} plus {i}?.", "completion": f" It is {2 * i}"} for i in range(n)]


def test_prompts_ending_in_a_period_get_a_real_separator(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", sentences())
    report = analyse(path, counter)
    assert report.checks["separator"] == {
        "common": "?.",
        "valid": False,
        "problem": "punctuation",
        "suggested": " ->",
    }
    assert any("end with `?.`, but that is ordinary punctuation" in f for f in report.findings)
    assert "add_separator" in report.optional_fix_ids()
    accepted = set(report.optional_fix_ids())
    result = write_prepared(open_source(path), report, accepted)
    describe_next_steps(report, result, accepted, None)
    rows = [json.loads(line) for line in Path(result.files[0]).read_text().splitlines()]
    assert rows[2]["prompt"] == "What is 2 plus 2?. ->" and result.separator == " ->"
    assert "End every prompt with the separator ` ->`, as in training" in result.advice


def test_declining_the_fix_leaves_no_advice_to_end_prompts_with_punctuation(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{**row, "completion": row["completion"] + "\n"} for row in sentences()]
    )
    report = analyse(path, counter)
    result = unchanged_result(open_source(path), report)
    describe_next_steps(report, result, set(), None)
    assert result.separator == "" and not any("End every prompt" in line for line in result.advice)
    assert result.stop == "\n"  # a newline found only at the end of every completion is a stop


def test_a_suffix_that_also_occurs_inside_a_prompt_is_not_a_separator(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": f" {i * 7} END"} for i in range(12)]
    rows[5]["prompt"] = "a -> b ->"
    report = analyse(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert report.checks["separator"]["problem"] == "repeated"
    assert report.plan.separator == "\n\n###\n\n"  # " ->" occurs in the prompts: the next choice
    assert any(
        "some prompts also hold it before their end: it is not a separator" in f for f in report.findings
    )
    assert report.checks["stop"]["valid"] and "add_stop" not in report.optional_fix_ids()


def test_completion_stops_follow_the_same_rules(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    period = [{"prompt": f"q{i} ->", "completion": f" answer number {i}."} for i in range(12)]
    report = analyse(write_jsonl(tmp_path / "p.jsonl", period), counter)
    assert report.checks["stop"]["problem"] == "punctuation" and report.plan.stop == "\n"
    repeated = [{"prompt": f"q{i} ->", "completion": f" {i} END"} for i in range(12)]
    repeated[3]["completion"] = " the END is near END"
    report = analyse(write_jsonl(tmp_path / "r.jsonl", repeated), counter)
    assert report.checks["stop"]["problem"] == "repeated"
    assert any("some completions also hold it before their end" in f for f in report.findings)
    accepted = {"add_stop"}
    result = write_prepared(open_source(tmp_path / "r.jsonl"), report, accepted)
    rows = [json.loads(line) for line in Path(result.files[0]).read_text().splitlines()]
    assert rows[3]["completion"] == " the END is near END\n" and result.stop == "\n"


def test_a_suffix_that_shrinks_in_a_later_chunk_is_checked_again(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    """The first chunk's prompts end with ` ## ->` and hold ` ->` inside; later ones end with `x ->`. The
    common suffix ` ->` only appears in the second chunk, so the first must be looked at again."""
    first = [f"p{i} -> a ## ->" for i in range(CHUNK_ROWS)]
    later = [f"p{i}x ->" for i in range(50)]
    path = tmp_path / "d.csv"
    path.write_text("prompt,completion\n" + "".join(f"{p},c{i}\n" for i, p in enumerate(first + later)))
    report = analyse(path, counter)
    assert report.checks["separator"]["common"] == " ->"
    assert report.checks["separator"]["problem"] == "repeated"


def test_a_separator_that_a_prompt_ending_would_complete_early_is_not_suggested(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    """`a\\n\\n###` + `\\n\\n###\\n\\n` holds the separator from the prompt's own `\\n\\n###` on."""
    rows = [{"prompt": f"item {i}", "completion": f" {i * 7} END"} for i in range(12)]
    rows[4]["prompt"] = "a\n\n###"
    report = analyse(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert report.plan.separator == "\n\n===\n\n"

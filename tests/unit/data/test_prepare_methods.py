"""`prepare` for the jobs API's formats: chats, preference pairs and reinforcement items get their checks,
a validation split and a `fine_tuning.jobs.create` command with the right method; what they write is
what the upload validator and the readers accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.data.prepare import analyse
from tuneforge.data.readers import read_preference_pairs, read_records, read_reinforcement_items
from tuneforge.data.report import PrepareReport
from tuneforge.data.sources import open_source
from tuneforge.data.tokens import TokenizerFileCounter
from tuneforge.data.validation import validate_upload
from tuneforge.data.writer import WriteResult, describe_next_steps, write_prepared

Rows = list[dict[str, Any]]


def write_jsonl(path: Path, rows: Rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def prepare(
    path: Path, counter: TokenizerFileCounter, accept: set[str] | None = None
) -> tuple[PrepareReport, WriteResult, list[Rows]]:
    report = analyse(path, counter, model="tiny")
    accepted = set(report.optional_fix_ids()) if accept is None else accept
    result = write_prepared(open_source(path), report, accepted)
    describe_next_steps(report, result, accepted, None)
    written = [[json.loads(line) for line in Path(name).read_text().splitlines()] for name in result.files]
    return report, result, written


def chat(i: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hey {i}"}]
    }


def pair(i: int, same: bool = False) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": f"Greet guest {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"Welcome, guest {i}!"}],
        "non_preferred_output": [{"role": "assistant", "content": f"Welcome, guest {i}!" if same else "hi"}],
    }


def test_chats_get_a_validation_split_and_a_jobs_api_command(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    report, result, (train, valid) = prepare(
        write_jsonl(tmp_path / "c.jsonl", [chat(i) for i in range(50)]), counter
    )
    assert "split" in report.optional_fix_ids()
    assert (len(train), len(valid)) == (40, 10) and result.counts == {"train": 40, "valid": 10}
    assert sorted(json.dumps(row) for row in train + valid) == sorted(json.dumps(chat(i)) for i in range(50))
    assert result.next_command == (
        f'tuneforge api fine_tuning.jobs.create -t "{tmp_path / "c_prepared_train.jsonl"}" '
        f'-v "{tmp_path / "c_prepared_valid.jsonl"}" -m tiny'
    )
    _, again, _ = prepare(write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(50)]), counter)
    assert Path(again.files[1]).read_text() == Path(result.files[1]).read_text()  # a seeded split


def test_preference_pairs_report_duplicates_identical_outputs_and_split(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    rows = [pair(i, same=i % 10 == 0) for i in range(40)] + [pair(3)]
    rows[5]["id"] = "x"
    report, result, (train, valid) = prepare(write_jsonl(tmp_path / "p.jsonl", rows), counter)
    assert (report.format, report.task, report.n_examples) == ("preference", "preference", 41)
    assert report.checks["identical_outputs"] == {"count": 4, "lines": [1, 11, 21, 31]}
    assert report.checks["duplicates"] == {"count": 1, "lines": [41]} and report.checks["unknown_keys"] == [
        "id"
    ]
    assert [fix.id for fix in report.fixes] == [
        "remove_keys",
        "remove_identical_outputs",
        "remove_duplicates",
        "split",
    ]
    assert report.tokens["max_counted"] > 0
    assert (len(train), len(valid)) == (28, 8) and all("id" not in row for row in train + valid)
    assert result.next_command.endswith(" -m tiny --method dpo")
    assert len(read_preference_pairs(Path(result.files[0]))) == 28
    assert validate_upload(Path(result.files[1]), filename="v.jsonl").format == "preference"


def test_identical_outputs_are_kept_when_declined(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [pair(i, same=i == 2) for i in range(5)])
    report, result, (rows,) = prepare(path, counter, accept=set())
    assert "split" not in report.optional_fix_ids()  # too few pairs to hold any back
    assert len(rows) == 5 and result.files == [str(tmp_path / "p_prepared.jsonl")]


def test_reinforcement_items_report_their_fields_and_keep_them(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    rows = [
        {
            "messages": [{"role": "user", "content": f"{i} + {i}?"}],
            "answer": str(2 * i),
            **({"hint": "x"} if i < 3 else {}),
        }
        for i in range(20)
    ]
    report, result, (train, valid) = prepare(write_jsonl(tmp_path / "r.jsonl", rows), counter)
    assert (report.format, report.n_examples) == ("reinforcement", 20)
    assert report.checks["fields"] == {"every": ["answer"], "some": {"hint": 3}}
    assert any("`hint` (3 of 20)" in finding for finding in report.findings)
    assert sorted(json.dumps(row) for row in train + valid) == sorted(json.dumps(row) for row in rows)
    assert result.next_command.endswith(" -m tiny --method reinforcement")
    assert any("needs a grader" in line for line in result.advice)
    assert read_reinforcement_items(Path(result.files[0]))[0].fields["answer"] in {
        str(2 * i) for i in range(20)
    }


def test_a_file_of_chats_ending_in_assistant_turns_stays_supervised(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    report, result, _ = prepare(write_jsonl(tmp_path / "c.jsonl", [chat(i) for i in range(3)]), counter)
    assert report.format == "chat" and "--method" not in result.next_command
    assert len(read_records(Path(result.files[0]))) == 3

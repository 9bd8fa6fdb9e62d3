from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneforge.data.prepare import analyse
from tuneforge.data.readers import read_records
from tuneforge.data.report import PrepareReport
from tuneforge.data.sources import open_source
from tuneforge.data.tokens import TokenizerFileCounter
from tuneforge.data.validation import validate_upload
from tuneforge.data.writer import WriteResult, describe_next_steps, write_prepared
from tuneforge.errors import InvalidFile

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


def generation_rows(n: int = 12) -> Rows:
    return [{"prompt": f"Question {i}: {i} plus {i}", "completion": f"{2 * i}"} for i in range(n)]


def fix_ids(report: PrepareReport) -> list[str]:
    return [fix.id for fix in report.fixes]


def test_conditional_generation_gets_separator_space_and_stop(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    report, result, (rows,) = prepare(write_jsonl(tmp_path / "gen.jsonl", generation_rows()), counter)
    assert report.task == "conditional generation"
    assert fix_ids(report) == ["add_separator", "add_stop", "add_leading_space"]
    assert rows[3] == {"prompt": "Question 3: 3 plus 3 ->", "completion": " 6\n"}
    assert result.files == [str(tmp_path / "gen_prepared.jsonl")]
    assert result.separator == " ->" and result.stop == "\n"
    assert 'stop=["\\n"]' in " ".join(result.advice)
    assert result.next_command == f'tuneforge api fine_tunes.create -t "{tmp_path / "gen_prepared.jsonl"}"'


def test_separator_never_occurs_inside_a_prompt(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = generation_rows()
    rows[0]["prompt"] = "a -> b\n\n###\n\nc"
    rows[1]["prompt"] = "x\n\n===\n\ny"
    report, _, (written,) = prepare(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert report.plan.separator == "\n\n---\n\n"
    assert all(row["prompt"].count("\n\n---\n\n") == 1 for row in written)


def test_existing_separator_and_stop_are_kept(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = [{"prompt": f"q{i}\n\n###\n\n", "completion": f" {i} apples END"} for i in range(12)]
    report, _, _ = prepare(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert fix_ids(report) == []
    assert (
        report.checks["separator"]["common"] == "\n\n###\n\n"
        and report.checks["stop"]["common"] == " apples END"
    )


def test_classification_split_is_stratified_and_advice_has_no_stop(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    rows = [{"prompt": f"review {i}", "completion": "positive" if i % 10 else "negative"} for i in range(300)]
    report, result, (train, valid) = prepare(write_jsonl(tmp_path / "s.jsonl", rows), counter)
    info = report.classification
    assert report.task == "classification" and info is not None
    assert info.classes == {" positive": 270, " negative": 30} and info.balance == round(30 / 270, 4)
    assert info.positive_class == " positive" and not info.single_token and info.first_tokens_distinct
    assert len(valid) == 60 and len(train) == 240  # the legacy split size: 20%, at most 1000
    assert sum(row["completion"] == " negative" for row in valid) == 6  # the class share, exactly
    assert "add_stop" not in fix_ids(report) and result.stop == ""
    assert "tive" not in " ".join(result.advice)
    assert result.next_command.endswith(
        '--compute_classification_metrics --classification_positive_class " positive"'
    )


def test_single_token_labels_get_max_tokens_1_and_rare_classes_stay_in_both_splits(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    labels = [" 1"] * 200 + [" 2"] * 97 + [" 3"] * 2
    rows = [{"prompt": f"text {i} ->", "completion": label} for i, label in enumerate(labels)]
    report, result, (train, valid) = prepare(write_jsonl(tmp_path / "m.jsonl", rows), counter)
    assert report.classification is not None and report.classification.single_token
    assert {row["completion"] for row in train} == {row["completion"] for row in valid} == {" 1", " 2", " 3"}
    assert result.next_command.endswith("--compute_classification_metrics --classification_n_classes 3")
    assert any("max_tokens=1 and no stop" in line for line in result.advice)


def test_classes_of_one_example_each_get_no_split_and_no_empty_validation_file(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    # 300 rows but 30 distinct (prompt, completion) pairs: after the duplicates go, each class has one
    rows = [{"prompt": f"order {i % 30} ->", "completion": f" item={i % 30}"} for i in range(300)]
    report, result, written = prepare(write_jsonl(tmp_path / "o.jsonl", rows), counter)
    assert report.task == "classification" and "split" not in fix_ids(report)
    assert result.files == [str(tmp_path / "o_prepared.jsonl")] and len(written[0]) == 30
    assert "-v" not in result.next_command.split()
    # Asked for anyway (as a script may), the split still writes no empty validation file.
    report = analyse(tmp_path / "o.jsonl", counter, model="tiny")
    result = write_prepared(open_source(tmp_path / "o.jsonl"), report, {"remove_duplicates", "split"})
    assert len(result.files) == 1 and result.counts == {"train": 30}


def test_binary_positive_class_prefers_a_positive_word(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = [{"prompt": f"ad {i} ->", "completion": " no" if i % 4 else " yes"} for i in range(40)]
    report, result, _ = prepare(write_jsonl(tmp_path / "ads.jsonl", rows), counter)
    assert report.classification is not None and report.classification.positive_class == " yes"
    assert '--classification_positive_class " yes"' in result.next_command


def test_open_ended_generation_needs_no_separator(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    path = tmp_path / "stories.txt"
    path.write_text("".join(f" {i} little pigs went out.\n" for i in range(10)))
    report, _, (rows,) = prepare(path, counter)
    assert report.task == "open-ended generation" and report.source_format == "txt"
    assert fix_ids(report) == ["convert"] and rows[0] == {
        "prompt": "",
        "completion": " 0 little pigs went out.",
    }


def test_columns_empty_rows_and_duplicates(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "Prompt,Completion,id\nq1 ->, a1\nq2 ->,\nq1 ->, a1\n,a3\n"
        + "".join(f"q{i} ->, a{i}\n" for i in range(4, 14))
    )
    report, _, (rows,) = prepare(path, counter)
    assert fix_ids(report)[:6] == [
        "convert", "lowercase_columns", "remove_columns", "remove_empty_completions", "remove_empty_prompts",
        "remove_duplicates",
    ]  # fmt: skip
    assert report.checks["duplicates"] == {"count": 1, "lines": [4]}
    assert report.checks["empty_completions"] == {"count": 1, "lines": [3]}
    assert rows[0] == {"prompt": "q1 ->", "completion": " a1\n"} and len(rows) == 11
    assert all(set(row) == {"prompt", "completion"} for row in rows)


def test_declined_fixes_are_not_applied(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = [*generation_rows(), generation_rows()[0]]
    _, _, (written,) = prepare(write_jsonl(tmp_path / "d.jsonl", rows), counter, accept={"add_leading_space"})
    assert len(written) == 13 and written[0] == {"prompt": rows[0]["prompt"], "completion": " 0"}


def test_long_examples_are_measured_in_real_tokens(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = generation_rows()
    rows[2]["prompt"] = " a" * 900  # 1800 characters but 900 tokens: fits the 1024-token context
    rows[5]["prompt"] = "a" * 1100  # 1100 tokens: too long
    report, _, (written,) = prepare(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert report.checks["long_examples"]["lines"] == [6]
    assert len(written) == 11 and report.tokens["max_counted"] == 1100 + len("10")


def test_prefixes_and_upper_case(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = [
        {"prompt": f"CLASSIFY THIS TEXT: ITEM {i} ->", "completion": f" Answer: VALUE {i}\n"}
        for i in range(12)
    ]
    report, _, (written,) = prepare(write_jsonl(tmp_path / "d.jsonl", rows), counter)
    assert fix_ids(report) == [
        "lowercase_prompts", "lowercase_completions", "remove_prompt_prefix", "remove_completion_prefix"
    ]  # fmt: skip
    assert written[3] == {"prompt": "3 ->", "completion": " 3\n"}


def test_identical_prompts_are_an_error(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    rows = [{"prompt": "same", "completion": f" answer {i}"} for i in range(10)]
    with pytest.raises(InvalidFile, match="all prompts are identical"):
        analyse(write_jsonl(tmp_path / "d.jsonl", rows), counter, model="tiny")


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": 2}\n',
            2,
            "completion",
            "found a number",
        ),
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n', 2, None, "not valid JSON"),
        ('{"text": "a"}\n', None, "prompt", "`prompt` column/key is missing"),
        ('{"prompt": "a", "completion": ""}\n', None, None, "every completion is empty"),
        ('{"prompt": "a", "completion": "b"}\n{"messages": []}\n', 2, None, "one format throughout"),
        ('{"prompt": "a", "completion": "b"}\n{"input": {}}\n', 2, None, "in the preference format"),
    ],
)
def test_bad_input_names_line_and_field_and_leaves_the_file_alone(
    tmp_path: Path, counter: TokenizerFileCounter, text: str, line: int | None, field: str | None, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(InvalidFile) as caught:
        analyse(path, counter, model="tiny")
    assert (caught.value.line, caught.value.field) == (line, field) and words in caught.value.message
    assert path.read_text() == text and list(tmp_path.iterdir()) == [path]


def test_outputs_never_overwrite_and_are_accepted_by_training(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", generation_rows())
    prepare(path, counter)
    _, result, _ = prepare(path, counter)
    assert result.files == [str(tmp_path / "d_prepared (1).jsonl")]
    assert len(read_records(Path(result.files[0]))) == 12
    assert validate_upload(Path(result.files[0]), filename="d_prepared.jsonl").n_examples == 12


def test_report_is_json(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    report = analyse(write_jsonl(tmp_path / "d.jsonl", generation_rows()), counter, model="tiny")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["task"] == "conditional generation" and data["tokens"]["total_estimate"] > 0
    assert data["fixes"][0] == {
        "id": "add_separator",
        "kind": "optional",
        "message": data["fixes"][0]["message"],
    }
    assert "plan" not in data


def test_chat_checks_roles_assistant_turns_unknown_keys_and_tokens(
    tmp_path: Path, counter: TokenizerFileCounter
) -> None:
    good = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello", "name": "bot"}], "id": 7}  # fmt: skip
    no_answer = {"messages": [{"role": "user", "content": "hi?"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [good, no_answer, good])
    report, result, (rows,) = prepare(path, counter)
    assert report.format == "chat" and report.n_examples == 2
    assert report.checks["roles"] == {"system": 2, "user": 2, "assistant": 2}
    assert report.checks["unknown_keys"] == ["id", "messages[].name"]
    assert report.checks["no_assistant"]["lines"] == [2]
    assert fix_ids(report) == ["remove_keys", "remove_no_assistant", "remove_duplicates"]
    assert report.tokens["max_counted"] == counter.count(["be brief\nhi\nhello"])[0] + 3 * 4
    expected = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}]  # fmt: skip
    assert rows == [{"messages": expected}]
    assert len(read_records(Path(result.files[0]))) == 1


def test_chat_with_an_unknown_role_is_an_error(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(InvalidFile) as caught:
        analyse(path, counter, model="tiny")
    assert caught.value.field == "messages[0].role" and caught.value.line == 1


def test_chunked_reading_gives_the_same_result_as_one_chunk(
    tmp_path: Path, counter: TokenizerFileCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"prompt": f"text {i % 70}", "completion": "Yes" if i % 3 else "NO"} for i in range(300)]
    rows.insert(150, {"prompt": "a" * 1100, "completion": "Yes"})
    whole = write_jsonl(tmp_path / "whole.jsonl", rows)
    _, _, expected = prepare(whole, counter)
    monkeypatch.setattr("tuneforge.data.readers.CHUNK_BYTES", 100)  # a few lines per chunk
    _, _, chunked = prepare(write_jsonl(tmp_path / "chunked.jsonl", rows), counter)
    assert chunked == expected
    distinct = {(row["prompt"], row["completion"]) for row in rows}
    assert sum(len(part) for part in chunked) == len(distinct) - 1  # duplicates across chunks, long row gone


def test_spreadsheet_with_numeric_labels(tmp_path: Path, counter: TokenizerFileCounter) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Prompt", "Completion", "notes"])
    for i in range(60):
        sheet.append([f"ticket {i}: " + ("printer broken", "login fails", "page slow")[i % 3], i % 2, "x"])
    book.save(tmp_path / "tickets.xlsx")
    report, result, (train, valid) = prepare(tmp_path / "tickets.xlsx", counter)
    info = report.classification
    assert report.source_format == "xlsx" and info is not None
    assert info.classes == {" 0": 30, " 1": 30} and info.single_token and info.positive_class == " 1"
    assert {"convert", "lowercase_columns", "remove_columns"} <= set(fix_ids(report))
    assert {"prompt": "ticket 2: page slow ->", "completion": " 0"} in train + valid and len(valid) == 12
    assert all(row["prompt"].endswith(" ->") and row["completion"] in (" 0", " 1") for row in train + valid)
    assert '--classification_positive_class " 1"' in result.next_command

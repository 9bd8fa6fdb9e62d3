from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.readers import read_records
from tuneforge.data.validation import validate_upload
from tuneforge.errors import InvalidFile


def write_lines(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_classification_upload_is_summarised(tmp_path: Path) -> None:
    rows = [{"prompt": f"text {i} ->", "completion": " yes" if i % 3 else " no"} for i in range(30)]
    summary = validate_upload(write_lines(tmp_path / "blob", rows), filename="sent.jsonl")
    assert summary.format == "prompt_completion" and summary.n_examples == 30
    assert summary.task == "classification" and summary.n_classes == 2
    assert summary.classes == {" yes": 20, " no": 10}
    assert summary.to_dict()["classes"] == {" yes": 20, " no": 10}


def test_generation_and_open_ended_tasks_are_told_apart(tmp_path: Path) -> None:
    conditional = [{"prompt": f"q{i} ->", "completion": f" a{i}\n"} for i in range(10)]
    open_ended = [{"prompt": "", "completion": f" story {i}\n"} for i in range(10)]
    assert validate_upload(write_lines(tmp_path / "a", conditional), filename="a.jsonl").task == (
        "conditional generation"
    )
    summary = validate_upload(write_lines(tmp_path / "b", open_ended), filename="b.jsonl")
    assert summary.task == "open-ended generation" and summary.classes is None


def test_chat_upload_is_summarised(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]}] * 4
    summary = validate_upload(write_lines(tmp_path / "c", rows), filename="chat.jsonl")
    assert (summary.format, summary.task, summary.n_examples, summary.n_characters) == ("chat", "chat", 4, 20)


def test_bad_line_is_reported_under_the_uploaded_name(tmp_path: Path) -> None:
    path = tmp_path / "blob-123"
    path.write_text('{"prompt": "p", "completion": " c"}\n{"prompt": "p", "completion": 5}\n')
    with pytest.raises(InvalidFile) as caught:
        validate_upload(path, filename="mine.jsonl")
    assert caught.value.message.startswith("mine.jsonl, line 2, field 'completion': expected a string")
    assert caught.value.status == 400 and caught.value.code == "invalid_file"


def test_non_jsonl_upload_is_rejected_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_text("prompt,completion\na,b\n")
    with pytest.raises(InvalidFile) as caught:
        validate_upload(path, filename="data.csv")
    assert "tuneforge prepare" in caught.value.message and caught.value.field == "file"


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt": "p", "completion": " c"}\n\n{"prompt": "q", "completion": " d"}\n',
        '{"prompt": "p", "completion": 1}\n',
        '{"prompt": "p", "completion": " c", "extra": 1}\n',
        '{"messages": [{"role": "assistant", "content": "x"}]}\n{"prompt": "p", "completion": " c"}\n',
        '{"messages": [{"role": "user", "content": "x"}, '
        '{"role": "assistant", "content": "y", "weight": 0}]}\n',
        "",
    ],
)
def test_upload_accepts_exactly_what_training_reads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(text)
    try:
        records = read_records(path)
    except InvalidFile as exc:
        with pytest.raises(InvalidFile) as caught:
            validate_upload(path, filename="f.jsonl")
        assert caught.value.message == exc.message
    else:
        assert validate_upload(path, filename="f.jsonl").n_examples == len(records)

"""Preference (DPO) and reinforcement files: read into records, validated on upload with the format named
in the summary, and every bad line named by its line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneforge.data.readers import read_preference_pairs, read_records, read_reinforcement_items
from tuneforge.data.records import ChatMessage, PreferencePair
from tuneforge.data.validation import validate_upload
from tuneforge.errors import InvalidFile

USER = {"role": "user", "content": "Say hi"}


def pair(i: int = 0, preferred: str = "Hello there!", other: str = "hi") -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "system", "content": "Be warm"}, {**USER, "content": f"Say hi {i}"}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": other}],
    }


def item(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}], **fields}


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_preference_pairs_are_read_and_summarised(tmp_path: Path) -> None:
    row = pair()
    row["input"]["tools"] = [{"type": "function", "function": {"name": "wave"}}]
    path = write(tmp_path / "p.jsonl", [row, pair(1)])
    first = read_preference_pairs(path)[0]
    assert first == PreferencePair(
        messages=(ChatMessage("system", "Be warm"), ChatMessage("user", "Say hi 0")),
        preferred=(ChatMessage("assistant", "Hello there!"),),
        non_preferred=(ChatMessage("assistant", "hi"),),
        tools=({"type": "function", "function": {"name": "wave"}},),
    )
    summary = validate_upload(path, filename="pairs.jsonl").to_dict()
    assert (summary["format"], summary["task"], summary["n_examples"]) == ("preference", "preference", 2)


def test_reinforcement_items_keep_their_fields_and_the_summary_lists_them(tmp_path: Path) -> None:
    rows = [item(0, answer="0", level=1), item(1, answer="2"), item(2, answer="4", level=3)]
    path = write(tmp_path / "r.jsonl", rows)
    items = read_reinforcement_items(path)
    assert items[0].messages == (ChatMessage("user", "What is 0 + 0?"),)
    assert items[0].fields == {"answer": "0", "level": 1}
    summary = validate_upload(path, filename="rft.jsonl")
    assert (summary.format, summary.task, summary.n_examples) == ("reinforcement", "reinforcement", 3)
    assert summary.fields == ["answer"] and summary.partial_fields == ["level"]


def test_a_supervised_reader_refuses_the_other_methods_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile) as caught:
        read_records(write(tmp_path / "p.jsonl", [pair()]))
    assert caught.value.line == 1 and "use method dpo" in caught.value.message
    with pytest.raises(InvalidFile) as caught:
        read_records(write(tmp_path / "r.jsonl", [item()]))
    assert caught.value.field == "messages" and "reinforcement file" in caught.value.message
    with pytest.raises(InvalidFile) as caught:
        read_preference_pairs(write(tmp_path / "c.jsonl", [item()]))
    assert (
        "expected preference pairs" in caught.value.message
        and "found reinforcement items" in caught.value.message
    )


def test_a_chat_file_with_one_line_ending_in_a_user_turn_names_that_line(tmp_path: Path) -> None:
    chat = {"messages": [USER, {"role": "assistant", "content": "hi"}]}
    with pytest.raises(InvalidFile) as caught:
        validate_upload(write(tmp_path / "c.jsonl", [chat, chat, item()]), filename="c.jsonl")
    assert caught.value.line == 3 and "end in a user turn but earlier lines' end in an assistant" in (
        caught.value.message
    )


BAD_PAIRS = [
    ({**pair(), "score": 1}, "score", "unknown key"),
    ({k: v for k, v in pair().items() if k != "non_preferred_output"}, "non_preferred_output", "missing"),
    ({**pair(), "input": "Say hi"}, "input", "expected an object"),
    ({**pair(), "input": {"messages": []}}, "input.messages", "non-empty list"),
    ({**pair(), "input": {"messages": [USER], "temperature": 1}}, "input.temperature", "unknown key"),
    (
        {**pair(), "input": {"messages": [USER, {"role": "assistant", "content": "x"}]}},
        "input.messages",
        "must end in a user turn",
    ),
    (
        {**pair(), "preferred_output": [{"role": "user", "content": "x"}]},
        "preferred_output[0].role",
        "assistant",
    ),
    (
        {**pair(), "preferred_output": [{"role": "assistant", "content": 3}]},
        "preferred_output[0].content",
        "string",
    ),
    (
        {**pair(), "non_preferred_output": [{"role": "assistant", "content": "x", "weight": 1}]},
        "non_preferred_output[0].weight",
        "only supervised chats",
    ),
    ({**pair(), "input": {"messages": [USER], "tools": {"a": 1}}}, "input.tools", "list of tool objects"),
    (
        item(0, messages=[{"role": "assistant", "content": "x", "weight": 0}, USER]),
        "messages[0].weight",
        "only supervised",
    ),
    (item(0, messages=[{"role": "robot", "content": "x"}, USER]), "messages[0].role", "role must be one of"),
]


@pytest.mark.parametrize(("row", "field", "words"), BAD_PAIRS)
def test_bad_lines_name_their_line_and_field(
    tmp_path: Path, row: dict[str, Any], field: str, words: str
) -> None:
    good = pair() if "input" in row or "preferred_output" in row else item()
    with pytest.raises(InvalidFile) as caught:
        validate_upload(write(tmp_path / "blob", [good, row]), filename="mine.jsonl")
    assert (caught.value.line, caught.value.field) == (2, field)
    assert words in caught.value.message and caught.value.message.startswith(
        f"mine.jsonl, line 2, field '{field}'"
    )

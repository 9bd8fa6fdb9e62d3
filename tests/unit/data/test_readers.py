from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.data.readers import read_records
from tuneforge.data.records import Chat, ChatMessage, PromptCompletion
from tuneforge.errors import InvalidFile


def write(tmp_path: Path, text: str | bytes, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def error_of(path: Path) -> InvalidFile:
    with pytest.raises(InvalidFile) as caught:
        read_records(path)
    return caught.value


def test_reads_prompt_completion_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, '{"prompt": "a ->", "completion": " b\\n"}\n\n{"prompt": "", "completion": " c"}\n'
    )
    assert read_records(path) == [PromptCompletion("a ->", " b\n"), PromptCompletion("", " c")]


def test_reads_chat_lines_with_weights(tmp_path: Path) -> None:
    line = (
        '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, '
        '{"role": "assistant", "content": "hello", "weight": 0}, {"role": "assistant", "content": "yo"}]}'
    )
    (record,) = read_records(write(tmp_path, line))
    assert record == Chat(
        (
            ChatMessage("system", "be brief"),
            ChatMessage("user", "hi"),
            ChatMessage("assistant", "hello", 0.0),
            ChatMessage("assistant", "yo"),
        )
    )


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, b'\xef\xbb\xbf{"prompt": "p", "completion": " c"}\n')
    assert read_records(path) == [PromptCompletion("p", " c")]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            '{"prompt": "p", "completion": " c"}\n{"prompt": "p", "completion": " c"',
            2,
            None,
            "not valid JSON",
        ),
        ('["p", "c"]', 1, None, "expected a JSON object"),
        ('{"prompt": "p"}', 1, "completion", "missing"),
        ('{"prompt": "p", "completion": 3}', 1, "completion", "expected a string, found a number"),
        ('{"prompt": null, "completion": " c"}', 1, "prompt", "found null"),
        ('{"prompt": "p", "completion": " c", "label": 1}', 1, "label", "unknown key"),
        ('{"prompt": "p", "completion": ""}', 1, "completion", "empty"),
        ('{"text": "p"}', 1, None, "expected the keys 'prompt' and 'completion'"),
        ('{"messages": []}', 1, "messages", "non-empty list"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', 1, "messages[0].role", "role must be one of"),
        ('{"messages": [{"role": "user", "content": 1}]}', 1, "messages[0].content", "expected a string"),
        ('{"messages": [{"role": "user", "content": "x"}]}', 1, "messages", "no assistant message"),
        (
            '{"messages": [{"role": "assistant", "content": "x", "name": "a"}]}',
            1,
            "messages[0].name",
            "unknown",
        ),
        ('{"messages": [{"role": "user", "content": "x", "weight": 1}]}', 1, "messages[0].weight", "only"),
        (
            '{"messages": [{"role": "assistant", "content": "x", "weight": 2}]}',
            1,
            "messages[0].weight",
            "0 or 1",
        ),
        ('{"messages": [{"role": "assistant", "content": "x"}], "tools": []}', 1, "tools", "unknown key"),
    ],
)
def test_bad_lines_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    error = error_of(write(tmp_path, text + "\n"))
    assert (error.file, error.line, error.field) == ("train.jsonl", line, field)
    assert words in error.message
    assert error.message.startswith(f"train.jsonl, line {line}")


def test_mixed_formats_are_rejected_at_the_first_odd_line(tmp_path: Path) -> None:
    text = '{"prompt": "p", "completion": " c"}\n{"messages": [{"role": "assistant", "content": "x"}]}\n'
    error = error_of(write(tmp_path, text))
    assert error.line == 2 and "one format throughout" in error.message


def test_invalid_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    path = write(
        tmp_path, b'{"prompt": "p", "completion": " c"}\n{"prompt": "caf\xe9", "completion": " c"}\n'
    )
    error = error_of(path)
    assert error.line == 2 and "not valid UTF-8 (byte 0xe9" in error.message


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_empty_file_is_rejected(tmp_path: Path, text: str) -> None:
    assert "holds no examples" in error_of(write(tmp_path, text)).message


def test_reading_never_modifies_the_file(tmp_path: Path) -> None:
    text = '{"prompt": "p", "completion": "c"}\n{"prompt": 1}\n'
    path = write(tmp_path, text)
    error_of(path)
    assert path.read_text() == text

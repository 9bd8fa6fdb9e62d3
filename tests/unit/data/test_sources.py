from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from tuneforge.data.sources import open_source
from tuneforge.errors import InvalidFile


def rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    return list(open_source(path).rows())


def test_csv_with_quoted_newlines_keeps_header_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n"two\nlines",yes\n\nthird,no\n')
    assert rows(path) == [
        (2, {"prompt": "two\nlines", "completion": "yes"}),
        (5, {"prompt": "third", "completion": "no"}),
    ]


def test_tsv_and_txt(tmp_path: Path) -> None:
    tsv = tmp_path / "d.tsv"
    tsv.write_text("prompt\tcompletion\na, b\tc\n")
    assert rows(tsv) == [(2, {"prompt": "a, b", "completion": "c"})]
    txt = tmp_path / "d.txt"
    txt.write_text("first story\r\nsecond\n")
    assert [row for _, row in rows(txt)] == [
        {"prompt": "", "completion": "first story"},
        {"prompt": "", "completion": "second"},
    ]


def test_xlsx_first_sheet_with_numbers_as_text(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["prompt", "completion"])
    sheet.append(["how many?", 3])
    sheet.append([None, None])
    sheet.append(["ratio", 0.5])
    book.create_sheet("ignored").append(["prompt", "completion"])
    book.save(tmp_path / "d.xlsx")
    assert rows(tmp_path / "d.xlsx") == [
        (2, {"prompt": "how many?", "completion": "3"}),
        (4, {"prompt": "ratio", "completion": "0.5"}),
    ]


def test_json_array_and_jsonl_named_json(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text('[{"prompt": "p", "completion": "c"},\n {"prompt": "q", "completion": "d"}]')
    assert [line for line, _ in rows(array)] == [1, 2]
    lines = tmp_path / "b.json"
    lines.write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "q", "completion": "d"}\n')
    assert [row["prompt"] for _, row in rows(lines)] == ["p", "q"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("d.parquet", b"PAR1", "unsupported file type"),
        ("d", b"x", "has no extension"),
        ("d.jsonl", b"", "the file is empty"),
        ("d.xlsx", b"not a zip", "not a valid XLSX workbook"),
        ("d.json", b'{"prompt": ', "not valid JSON"),
    ],
)
def test_unusable_files_are_named(tmp_path: Path, name: str, content: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidFile) as caught:
        rows(path)
    assert words in caught.value.message and str(path) in caught.value.message


def test_csv_in_another_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("prompt,completion\ncafé,yes\n".encode("latin-1"))
    with pytest.raises(InvalidFile) as caught:
        rows(path)
    assert caught.value.line == 2 and "not valid UTF-8 (byte 0xe9)" in caught.value.message


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiter_is_detected_whatever_the_extension(tmp_path: Path, delimiter: str) -> None:
    """Values holding the other delimiters (a comma in text, a semicolon in a list) do not mislead it."""
    path = tmp_path / "d.csv"
    lines = [f"prompt{delimiter}completion", f'"a, b; c | d"{delimiter}yes', f"plain text{delimiter}no"]
    path.write_text("\n".join(lines) + "\n")
    source = open_source(path)
    assert source.dialect is not None and source.dialect.delimiter == delimiter
    assert [row for _, row in source.rows()] == [
        {"prompt": "a, b; c | d", "completion": "yes"},
        {"prompt": "plain text", "completion": "no"},
    ]


def test_single_quotes_header_case_spaces_and_blank_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_bytes(
        "\ufeff Prompt ; COMPLETION \r\n'it''s; fine';' yes'\r\n ; \r\n;\r\n'two\r\nlines';' no'\r\n".encode()
    )
    source = open_source(path)
    assert source.dialect is not None and (source.dialect.delimiter, source.dialect.quotechar) == (";", "'")
    assert rows(path) == [
        (2, {"Prompt": "it's; fine", "COMPLETION": " yes"}),
        (5, {"Prompt": "two\r\nlines", "COMPLETION": " no"}),
    ]


def test_a_row_wider_than_the_header_names_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt;completion\na;b\nc;d;e\n")
    with pytest.raises(InvalidFile) as caught:
        rows(path)
    assert caught.value.line == 3 and "(values separated by ';')" in caught.value.message

"""Raw input files for `tuneforge prepare`: JSONL, JSON, CSV, TSV, TXT and XLSX, each read as a stream of
(line number, row) where a row maps column names to values. Reading never writes to the file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import orjson

from tuneforge.data.readers import iter_json_chunks, iter_json_lines
from tuneforge.errors import InvalidFile, MissingExtra

SourceFormat = Literal["jsonl", "json", "csv", "tsv", "txt", "xlsx"]
Row = dict[str, Any]

CHUNK_ROWS = 4096  # rows per chunk for formats read row by row
DELIMITERS = (",", ";", "\t", "|")  # what spreadsheets and locales write (";" where "," is the decimal mark)
QUOTES = ('"', "'")
SNIFF_BYTES = 1 << 16  # the head of a delimited file that decides its dialect

EXTENSIONS: dict[str, SourceFormat] = {
    ".jsonl": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
    ".xlsx": "xlsx",
}


@dataclass(frozen=True)
class Dialect:
    """How a CSV/TSV file separates and quotes its values, as detected from its head."""

    delimiter: str
    quotechar: str = '"'


@dataclass(frozen=True)
class Source:
    """A raw data file and how to read it. `rows()` can be called again for a second pass."""

    path: Path
    format: SourceFormat
    dialect: Dialect | None = None  # CSV and TSV only

    @property
    def name(self) -> str:
        return str(self.path)

    def rows(self) -> Iterator[tuple[int, Row]]:
        if self.dialect is not None:
            return _delimited_rows(self.path, self.name, self.dialect)
        readers = {
            "jsonl": _jsonl_rows,
            "json": _json_rows,
            "csv": _csv_rows,
            "tsv": _tsv_rows,
            "txt": _txt_rows,
            "xlsx": _xlsx_rows,
        }
        return readers[self.format](self.path, self.name)

    def chunks(self) -> Iterator[tuple[list[int], list[Row]]]:
        """The rows a chunk at a time: (line numbers, rows). JSONL is parsed a megabyte per call."""
        if self.format == "jsonl":
            yield from iter_json_chunks(self.path, name=self.name)
            return
        rows = self.rows()
        while batch := list(islice(rows, CHUNK_ROWS)):
            yield [line for line, _ in batch], [row for _, row in batch]


def open_source(path: Path) -> Source:
    """The source for `path`, chosen by its extension; raises `InvalidFile` for a missing file or an
    unsupported type."""
    if not path.is_file():
        raise InvalidFile("no such file", file=str(path))
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        found = f"ends with '{path.suffix}'" if path.suffix else "has no extension"
        raise InvalidFile(
            f"unsupported file type: the name {found}; use .jsonl, .json, .csv, .tsv, .txt or .xlsx",
            file=str(path),
        )
    if path.stat().st_size == 0:
        raise InvalidFile("the file is empty", file=str(path))
    if fmt in ("csv", "tsv"):
        return Source(path, fmt, sniff_dialect(path, default="," if fmt == "csv" else "\t"))
    return Source(path, fmt)


def sniff_dialect(path: Path, *, default: str) -> Dialect:
    """The delimiter and quote character that read the file's head best: a header naming `prompt` and
    `completion` first, then more than one column, then rows as wide as the header; ties go to the
    extension's delimiter and the double quote. (csv.Sniffer guesses from character frequencies, which
    the commas and apostrophes of ordinary text mislead.)"""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if len(head) == SNIFF_BYTES:
        text = text[: text.rfind("\n") + 1] or text  # whole lines only
    candidates = [Dialect(delimiter, quote) for delimiter in DELIMITERS for quote in QUOTES]
    return max(candidates, key=lambda dialect: _fit(text, dialect, default))


def _fit(text: str, dialect: Dialect, default: str) -> tuple[int, bool, float, bool, bool]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text), **_reader_options(dialect)) if any(row)]
    except csv.Error:
        return (-1, False, 0.0, False, False)
    if not rows:
        return (0, False, 0.0, dialect.delimiter == default, dialect.quotechar == '"')
    header, body = rows[0], rows[1:]
    named = len({"prompt", "completion"} & {column.strip().lower() for column in header})
    even = sum(len(row) == len(header) for row in body) / len(body) if body else 1.0
    return (named, len(header) > 1, even, dialect.delimiter == default, dialect.quotechar == '"')


def _reader_options(dialect: Dialect) -> dict[str, Any]:
    return {"delimiter": dialect.delimiter, "quotechar": dialect.quotechar}


def _jsonl_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    return iter_json_lines(path, name=name)


def _json_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    """A JSON array of objects (the row's number is its position), or JSONL saved as .json."""
    data = path.read_bytes()
    try:
        loaded = orjson.loads(data)
    except orjson.JSONDecodeError:
        if data.count(b"\n") > 1:  # JSONL under a .json name, as the legacy tool also accepts
            yield from iter_json_lines(path, name=name)
            return
        raise InvalidFile("not valid JSON; expected an array of example objects", file=name) from None
    if isinstance(loaded, dict):
        loaded = [loaded]
    if not isinstance(loaded, list):
        raise InvalidFile("expected a JSON array of example objects", file=name)
    for index, item in enumerate(loaded, start=1):
        if not isinstance(item, dict):
            raise InvalidFile(f"array item {index} is not an object", file=name, line=index)
        yield index, item


def _csv_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    return _delimited_rows(path, name, Dialect(","))


def _tsv_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    return _delimited_rows(path, name, Dialect("\t"))


def _delimited_rows(path: Path, name: str, dialect: Dialect) -> Iterator[tuple[int, Row]]:
    reader = csv.reader(_decoded_lines(path, name), **_reader_options(dialect))
    header = _next_or_none(reader, name)
    if header is None:
        return
    columns = [column.strip() for column in header]
    line = reader.line_num
    while (values := _next_or_none(reader, name, line + 1)) is not None:
        line, start = reader.line_num, line + 1
        if not any(values) or not any(map(str.strip, values)):
            continue  # a blank row, or one of only spaces and delimiters
        if len(values) > len(columns):
            message = (
                f"{len(values)} values but the header names {len(columns)} columns (values separated by "
                f"{dialect.delimiter!r}); quote a value that holds the delimiter"
            )
            raise InvalidFile(message, file=name, line=start)
        values += [""] * (len(columns) - len(values))  # short rows: missing cells are empty, as in pandas
        yield start, dict(zip(columns, values, strict=True))


def _next_or_none(reader: Any, name: str, line: int = 1) -> list[str] | None:
    try:
        return next(reader)  # type: ignore[no-any-return]
    except StopIteration:
        return None
    except csv.Error as exc:
        raise InvalidFile(f"not valid CSV ({exc})", file=name, line=line) from None


def _txt_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    """Each line is a completion with an empty prompt, as in the legacy tool."""
    for number, text in enumerate(_decoded_lines(path, name), start=1):
        yield number, {"prompt": "", "completion": text.rstrip("\r\n")}


def _decoded_lines(path: Path, name: str) -> Iterator[str]:
    """The file's lines as text, decoded one by one so that an encoding error names its line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte-order mark, as Excel writes in "CSV UTF-8"
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
                raise InvalidFile(message, file=name, line=number) from None


def _xlsx_rows(path: Path, name: str) -> Iterator[tuple[int, Row]]:
    """The first sheet; its first row names the columns."""
    try:
        import openpyxl  # only for spreadsheets: it costs a quarter second to import
    except ImportError:
        raise MissingExtra("Reading XLSX files", "xlsx") from None

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and XML errors for a non-workbook
        raise InvalidFile(f"not a valid XLSX workbook ({type(exc).__name__})", file=name) from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        columns = [str(cell).strip() if cell is not None else "" for cell in header]
        for number, values in enumerate(rows, start=2):
            if any(cell not in (None, "") for cell in values):
                yield number, {c: _cell_text(v) for c, v in zip(columns, values, strict=False) if c}
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    """Spreadsheet cells are text to a language model: 1.0 is written "1" as the user sees it."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

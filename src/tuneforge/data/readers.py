"""Read prepared fine-tuning files (JSONL of prompt/completion pairs or chats) into records, one streaming
pass, with an `InvalidFile` naming the file, line and field for anything training cannot use."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import orjson

from tuneforge.data.records import Chat, ChatMessage, PromptCompletion, Record
from tuneforge.errors import InvalidFile

RecordFormat = Literal["prompt_completion", "chat"]

PROMPT_COMPLETION_KEYS = frozenset({"prompt", "completion"})
CHAT_KEYS = frozenset({"messages"})
MESSAGE_KEYS = frozenset({"role", "content", "weight"})
ROLES = ("system", "user", "assistant")
_FIX_HINT = "run `tuneforge prepare -f FILE` to fix it"


def iter_records(path: Path, *, name: str | None = None) -> Iterator[Record]:
    """Yield the records of a prepared JSONL file. `name` is how errors refer to the file (default: its
    file name). Blank lines are skipped; every other line must be one record of the file's format."""
    shown = name or path.name
    first_format: RecordFormat | None = None
    chunks = iter_json_chunks(path, name=shown)  # a megabyte per orjson call: uploads can be big
    for number, obj in chain.from_iterable(zip(numbers, objs, strict=True) for numbers, objs in chunks):
        record = parse_record(obj, file=shown, line=number)
        kind: RecordFormat = "chat" if isinstance(record, Chat) else "prompt_completion"
        if first_format is None:
            first_format = kind
        elif kind != first_format:
            raise InvalidFile(
                f"this line is in the {kind} format but earlier lines are {first_format}; a file must use "
                "one format throughout",
                file=shown,
                line=number,
            )
        yield record
    if first_format is None:
        raise InvalidFile("the file holds no examples (it is empty)", file=shown)


def read_records(path: Path, *, name: str | None = None) -> list[Record]:
    """All records of a prepared JSONL file (see `iter_records`)."""
    return list(iter_records(path, name=name))


def iter_json_lines(path: Path, *, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object is an error."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark, as some editors on Windows write
            if not raw.strip():
                continue
            yield number, _load_object(raw, name=name, line=number)


CHUNK_BYTES = 1 << 20  # lines are parsed a megabyte at a time: one orjson call instead of thousands


def iter_json_chunks(path: Path, *, name: str) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
    """Like `iter_json_lines`, a chunk of lines at a time: (line numbers, objects). Each chunk is parsed
    as one JSON array; a chunk that does not parse that way (a bad or blank line) is parsed line by line,
    which finds the line at fault."""
    first = 1
    with path.open("rb") as handle:
        while lines := handle.readlines(CHUNK_BYTES):
            if first == 1 and lines[0].startswith(b"\xef\xbb\xbf"):
                lines[0] = lines[0][3:]
            numbers = list(range(first, first + len(lines)))
            first += len(lines)
            objects = _fast_chunk(lines)
            if objects is not None:
                yield numbers, objects
                continue
            pairs = [
                (n, _load_object(raw, name=name, line=n))
                for n, raw in zip(numbers, lines, strict=True)
                if raw.strip()
            ]
            yield [n for n, _ in pairs], [obj for _, obj in pairs]


def _fast_chunk(lines: list[bytes]) -> list[dict[str, Any]] | None:
    try:
        objects = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(objects) != len(lines) or set(map(type, objects)) != {dict}:
        return None  # a line held several values, or a non-object: the slow path names it
    return objects  # type: ignore[no-any-return]


def _load_object(raw: bytes, *, name: str, line: int) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidFile(_json_problem(raw, exc), file=name, line=line) from None
    if not isinstance(obj, dict):
        raise InvalidFile(
            f"expected a JSON object per line, found {_json_type(obj)}; each line must be one example",
            file=name,
            line=line,
        )
    return obj


def _json_problem(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (
            f"not valid UTF-8 (byte 0x{raw[bad.start]:02x} at column {bad.start + 1}); save the file as UTF-8"
        )
    return f"not valid JSON ({exc.msg} at column {exc.colno}); each line must be one complete JSON object"


def parse_record(obj: dict[str, Any], *, file: str, line: int) -> Record:
    """Turn one decoded line into a record, or raise naming the field that is wrong."""
    keys = obj.keys()
    if "messages" in keys:
        return _parse_chat(obj, file=file, line=line)
    if "prompt" in keys or "completion" in keys:
        return _parse_prompt_completion(obj, file=file, line=line)
    shown = ", ".join(repr(k) for k in keys) or "none"
    raise InvalidFile(
        f"expected the keys 'prompt' and 'completion', or 'messages' (chat format); found {shown}",
        file=file,
        line=line,
    )


def _parse_prompt_completion(obj: dict[str, Any], *, file: str, line: int) -> PromptCompletion:
    _reject_unknown(obj, PROMPT_COMPLETION_KEYS, "only 'prompt' and 'completion' are allowed", file, line, "")
    for key in ("prompt", "completion"):
        if key not in obj:
            raise InvalidFile(
                "missing; every line needs 'prompt' and 'completion'", file=file, line=line, field=key
            )
        _require_string(obj[key], file=file, line=line, field=key)
    if not obj["completion"]:
        raise InvalidFile(
            f"empty; there is nothing to learn from this example ({_FIX_HINT})",
            file=file,
            line=line,
            field="completion",
        )
    return PromptCompletion(obj["prompt"], obj["completion"])


def _parse_chat(obj: dict[str, Any], *, file: str, line: int) -> Chat:
    _reject_unknown(obj, CHAT_KEYS, "a chat example holds only 'messages'", file, line, "")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise InvalidFile(
            f"expected a non-empty list of messages, found {_json_type(messages)}",
            file=file,
            line=line,
            field="messages",
        )
    parsed = tuple(
        _parse_message(message, file=file, line=line, field=f"messages[{index}]")
        for index, message in enumerate(messages)
    )
    if not any(m.role == "assistant" and m.weight != 0 for m in parsed):
        raise InvalidFile(
            "no assistant message (with a weight other than 0); there is nothing to learn",
            file=file,
            line=line,
            field="messages",
        )
    return Chat(parsed)


def _parse_message(message: Any, *, file: str, line: int, field: str) -> ChatMessage:
    if not isinstance(message, dict):
        raise InvalidFile(
            f"expected a message object, found {_json_type(message)}", file=file, line=line, field=field
        )
    allowed = "a message holds 'role', 'content' and (assistant only) 'weight'"
    _reject_unknown(message, MESSAGE_KEYS, allowed, file, line, f"{field}.")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidFile(
            f"role must be one of {', '.join(ROLES)}; found {role!r}",
            file=file,
            line=line,
            field=f"{field}.role",
        )
    if "content" not in message:
        raise InvalidFile("missing", file=file, line=line, field=f"{field}.content")
    _require_string(message["content"], file=file, line=line, field=f"{field}.content")
    return ChatMessage(role, message["content"], _weight(message, file=file, line=line, field=field))


def _weight(message: dict[str, Any], *, file: str, line: int, field: str) -> float | None:
    if "weight" not in message:
        return None
    weight = message["weight"]
    if message["role"] != "assistant":
        raise InvalidFile(
            "only assistant messages take a weight", file=file, line=line, field=f"{field}.weight"
        )
    if isinstance(weight, bool) or weight not in (0, 1):
        raise InvalidFile(
            f"weight must be 0 or 1, found {weight!r}", file=file, line=line, field=f"{field}.weight"
        )
    return float(weight)


def _reject_unknown(
    obj: dict[str, Any], allowed: frozenset[str], rule: str, file: str, line: int, prefix: str
) -> None:
    unknown = sorted(obj.keys() - allowed)
    if unknown:
        raise InvalidFile(f"unknown key; {rule}", file=file, line=line, field=prefix + unknown[0])


def _require_string(value: Any, *, file: str, line: int, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidFile(f"expected a string, found {_json_type(value)}", file=file, line=line, field=field)


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)

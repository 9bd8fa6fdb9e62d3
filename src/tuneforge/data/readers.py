"""Read prepared fine-tuning files (JSONL of prompt/completion pairs, chats, preference pairs or
reinforcement items) into records, one streaming pass, with an `InvalidFile` naming the file, line and
field for anything training cannot use."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from tuneforge.data.records import (
    AnyRecord,
    Chat,
    ChatMessage,
    PreferencePair,
    PromptCompletion,
    Record,
    ReinforcementItem,
)
from tuneforge.errors import InvalidFile

RecordFormat = Literal["prompt_completion", "chat", "preference", "reinforcement"]
FORMAT_NAMES: dict[RecordFormat, str] = {
    "prompt_completion": "prompt/completion pairs",
    "chat": "chats ending in an assistant answer",
    "preference": "preference pairs (input, preferred_output, non_preferred_output)",
    "reinforcement": "reinforcement items (messages ending in a user turn)",
}

PROMPT_COMPLETION_KEYS = frozenset({"prompt", "completion"})
CHAT_KEYS = frozenset({"messages"})
PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
MESSAGE_KEYS = frozenset({"role", "content", "weight"})
ROLES = ("system", "user", "assistant")
T = TypeVar("T")
_FIX_HINT = "run `tuneforge prepare -f FILE` to fix it"


def iter_records(path: Path, *, name: str | None = None) -> Iterator[Record]:
    """Yield the records of a prepared supervised JSONL file (prompt/completion pairs or chats). `name`
    is how errors refer to the file (default: its file name). Blank lines are skipped; every other line
    must be one record of the file's format."""
    shown = name or path.name
    for number, record in iter_numbered_records(path, name=shown):
        if not isinstance(record, PromptCompletion | Chat):
            raise InvalidFile(_not_supervised(record), file=shown, line=number, field=_format_field(record))
        yield record


def iter_numbered_records(path: Path, *, name: str) -> Iterator[tuple[int, AnyRecord]]:
    """(line number, record) for a JSONL file in any of the four formats, the same one throughout."""
    first_format: RecordFormat | None = None
    chunks = iter_json_chunks(path, name=name)  # a megabyte per orjson call: uploads can be big
    for number, obj in chain.from_iterable(zip(numbers, objs, strict=True) for numbers, objs in chunks):
        record = parse_any_record(obj, file=name, line=number)
        kind = record_format(record)
        if first_format is None:
            first_format = kind
        elif kind != first_format:
            raise InvalidFile(_mixed(kind, first_format), file=name, line=number)
        yield number, record
    if first_format is None:
        raise InvalidFile("the file holds no examples (it is empty)", file=name)


def record_format(record: AnyRecord) -> RecordFormat:
    if isinstance(record, PromptCompletion):
        return "prompt_completion"
    if isinstance(record, Chat):
        return "chat"
    return "preference" if isinstance(record, PreferencePair) else "reinforcement"


def _mixed(kind: RecordFormat, first: RecordFormat) -> str:
    if {kind, first} == {"chat", "reinforcement"}:
        user, answer = "a user turn", "an assistant answer"
        this, earlier = (user, answer) if kind == "reinforcement" else (answer, user)
        return (
            f"this line's messages end in {this} but earlier lines' end in {earlier}; supervised chats end "
            "with the answer to learn, reinforcement items with the turn to answer"
        )
    return (
        f"this line holds {FORMAT_NAMES[kind]} but earlier lines hold {FORMAT_NAMES[first]}; a file must use "
        "one format throughout"
    )


def _not_supervised(record: AnyRecord) -> str:
    if isinstance(record, ReinforcementItem):
        return (
            "no assistant message (with a weight other than 0); there is nothing to learn (messages that end "
            "in a user turn make a reinforcement file, for a job with method reinforcement)"
        )
    return "a preference pair; a supervised job trains on prompt/completion pairs or chats (use method dpo)"


def _format_field(record: AnyRecord) -> str | None:
    return "messages" if isinstance(record, ReinforcementItem) else None


def read_records(path: Path, *, name: str | None = None) -> list[Record]:
    """All records of a prepared supervised JSONL file (see `iter_records`)."""
    return list(iter_records(path, name=name))


def read_preference_pairs(path: Path, *, name: str | None = None) -> list[PreferencePair]:
    """All pairs of a prepared preference (DPO) file; any other format is an error naming its line."""
    return _read_only(path, name, PreferencePair, "preference")


def read_reinforcement_items(path: Path, *, name: str | None = None) -> list[ReinforcementItem]:
    """All items of a prepared reinforcement file; any other format is an error naming its line."""
    return _read_only(path, name, ReinforcementItem, "reinforcement")


def _read_only(path: Path, name: str | None, kind: type[T], fmt: RecordFormat) -> list[T]:
    shown = name or path.name
    records: list[T] = []
    for number, record in iter_numbered_records(path, name=shown):
        if not isinstance(record, kind):
            found = FORMAT_NAMES[record_format(record)]
            raise InvalidFile(f"expected {FORMAT_NAMES[fmt]}, found {found}", file=shown, line=number)
        records.append(record)
    return records


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
    """Turn one decoded line into a supervised record, or raise naming the field that is wrong."""
    record = parse_any_record(obj, file=file, line=line)
    if not isinstance(record, PromptCompletion | Chat):
        raise InvalidFile(_not_supervised(record), file=file, line=line, field=_format_field(record))
    return record


def parse_any_record(obj: dict[str, Any], *, file: str, line: int) -> AnyRecord:
    """Turn one decoded line into a record of whichever format it holds. Chat messages that end in a user
    turn are a reinforcement item (the model is to answer it); otherwise a supervised chat."""
    keys = obj.keys()
    if "messages" in keys:
        messages = obj["messages"]
        if isinstance(messages, list) and messages and _role(messages[-1]) == "user":
            return parse_reinforcement(obj, file=file, line=line)
        return _parse_chat(obj, file=file, line=line)
    if keys & PREFERENCE_KEYS:
        return parse_preference(obj, file=file, line=line)
    if "prompt" in keys or "completion" in keys:
        return _parse_prompt_completion(obj, file=file, line=line)
    shown = ", ".join(repr(k) for k in keys) or "none"
    raise InvalidFile(
        f"expected the keys 'prompt' and 'completion', 'messages' (chat or reinforcement) or 'input', "
        f"'preferred_output' and 'non_preferred_output' (preference); found {shown}",
        file=file,
        line=line,
    )


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def parse_preference(obj: dict[str, Any], *, file: str, line: int) -> PreferencePair:
    """A DPO line as OpenAI documents it; every problem names its field (`input.messages[2].role`, …)."""
    _reject_unknown(
        obj, PREFERENCE_KEYS, "a preference pair holds only " + _names(PREFERENCE_KEYS), file, line, ""
    )
    for key in ("input", "preferred_output", "non_preferred_output"):
        if key not in obj:
            raise InvalidFile("missing; a preference pair needs all three", file=file, line=line, field=key)
    given = obj["input"]
    if not isinstance(given, dict):
        raise InvalidFile(
            f"expected an object holding 'messages', found {_json_type(given)}",
            file=file,
            line=line,
            field="input",
        )
    _reject_unknown(
        given, INPUT_KEYS, "the input holds 'messages' and optionally 'tools'", file, line, "input."
    )
    messages = _messages(given.get("messages"), file=file, line=line, field="input.messages", weights=False)
    if messages[-1].role != "user":
        raise InvalidFile(
            f"the input must end in a user turn, for the outputs to answer; it ends in {messages[-1].role!r}",
            file=file,
            line=line,
            field="input.messages",
        )
    preferred, other = (
        _outputs(obj[key], file=file, line=line, field=key)
        for key in ("preferred_output", "non_preferred_output")
    )
    return PreferencePair(messages, preferred, other, _tools(given.get("tools"), file=file, line=line))


def _outputs(value: Any, *, file: str, line: int, field: str) -> tuple[ChatMessage, ...]:
    messages = _messages(value, file=file, line=line, field=field, weights=False)
    for index, message in enumerate(messages):
        if message.role != "assistant":
            raise InvalidFile(
                f"an output holds assistant messages only; found {message.role!r}",
                file=file,
                line=line,
                field=f"{field}[{index}].role",
            )
    return messages


def _tools(value: Any, *, file: str, line: int) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        raise InvalidFile("expected a list of tool objects", file=file, line=line, field="input.tools")
    return tuple(value)


def parse_reinforcement(obj: dict[str, Any], *, file: str, line: int) -> ReinforcementItem:
    """Messages ending in a user turn plus any other fields (graders read them as `{{item.<field>}}`)."""
    messages = _messages(obj["messages"], file=file, line=line, field="messages", weights=False)
    if messages[-1].role != "user":
        raise InvalidFile(
            "a reinforcement item's messages end in a user turn, for the model to answer",
            file=file,
            line=line,
            field="messages",
        )
    return ReinforcementItem(messages, {key: value for key, value in obj.items() if key != "messages"})


def _messages(value: Any, *, file: str, line: int, field: str, weights: bool) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidFile(
            f"expected a non-empty list of messages, found {_json_type(value)}",
            file=file,
            line=line,
            field=field,
        )
    parsed = tuple(
        _parse_message(message, file=file, line=line, field=f"{field}[{index}]")
        for index, message in enumerate(value)
    )
    if not weights:
        for index, message in enumerate(parsed):
            if message.weight is not None:
                raise InvalidFile(
                    "only supervised chats take a weight",
                    file=file,
                    line=line,
                    field=f"{field}[{index}].weight",
                )
    return parsed


def _names(keys: frozenset[str]) -> str:
    return ", ".join(f"'{key}'" for key in sorted(keys))


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
    parsed = _messages(obj["messages"], file=file, line=line, field="messages", weights=True)
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

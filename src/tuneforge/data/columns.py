"""Map raw rows to prompt/completion pairs: find the two columns (whatever their case), note unknown ones,
and insist that values are strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from tuneforge.data.readers import PREFERENCE_KEYS
from tuneforge.data.sources import Row
from tuneforge.errors import InvalidFile

REQUIRED = ("prompt", "completion")
_CACHE_LIMIT = 1024  # distinct key layouts remembered; JSON rows nearly always share one


@dataclass
class ColumnMap:
    """Resolves each row's prompt and completion. Missing values and nulls read as empty strings (the
    empty checks then report them); any other non-string is an error naming the line and field."""

    file: str
    renamed: dict[str, str] = field(default_factory=dict)  # column as written -> its lower-case name
    unknown: dict[str, None] = field(default_factory=dict)  # an insertion-ordered set
    found: set[str] = field(default_factory=set)
    _cache: dict[tuple[str, ...], tuple[str | None, str | None]] = field(default_factory=dict)

    def columns(self, lines: list[int], rows: list[Row]) -> tuple[list[str], list[str]]:
        """The prompts and completions of a chunk of rows. When every row has the same keys and string
        values (the usual case) this runs in C; otherwise row by row, which finds the offending line."""
        layouts = set(map(tuple, rows))
        if len(layouts) == 1:
            layout = layouts.pop()
            if layout in self._cache:
                prompt_key, completion_key = self._cache[layout]
                prompts = list(map(itemgetter(prompt_key), rows)) if prompt_key else [""] * len(rows)
                completions = (
                    list(map(itemgetter(completion_key), rows)) if completion_key else [""] * len(rows)
                )
                if set(map(type, prompts)) | set(map(type, completions)) <= {str}:
                    return prompts, completions
        pairs = [self.pair(line, row) for line, row in zip(lines, rows, strict=True)]
        return [p for p, _ in pairs], [c for _, c in pairs]

    def pair(self, line: int, row: Row) -> tuple[str, str]:
        keys = tuple(row)
        mapping = self._cache.get(keys)
        if mapping is None:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            if "messages" in keys or PREFERENCE_KEYS.intersection(keys):
                kind = "chat" if "messages" in keys else "preference"
                raise InvalidFile(
                    f"this line is in the {kind} format but earlier lines are prompt/completion pairs; "
                    "a file must use one format throughout",
                    file=self.file,
                    line=line,
                )
            mapping = self._cache[keys] = self._resolve(keys)
        prompt_key, completion_key = mapping
        return self._text(row, prompt_key, line), self._text(row, completion_key, line)

    def _resolve(self, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
        resolved: list[str | None] = []
        for column in REQUIRED:
            key = column if column in keys else next((k for k in keys if k.strip().lower() == column), None)
            if key is not None:
                self.found.add(column)
                if key != column:
                    self.renamed[key] = column
            resolved.append(key)
        for key in keys:
            if key not in resolved:
                self.unknown[key] = None
        return resolved[0], resolved[1]

    def _text(self, row: Row, key: str | None, line: int) -> str:
        if key is None:
            return ""
        value: Any = row[key]
        if type(value) is str:
            return value
        if value is None:
            return ""
        kind = "a number" if isinstance(value, int | float) and not isinstance(value, bool) else None
        kind = kind or {bool: "a boolean", list: "an array", dict: "an object"}.get(type(value), "a value")
        raise InvalidFile(
            f'expected a string, found {kind} ({value!r:.40}); quote it, e.g. "{value}"',
            file=self.file,
            line=line,
            field=key,
        )

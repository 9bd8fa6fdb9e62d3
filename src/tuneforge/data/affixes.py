"""Streaming text statistics for the prepare checks: the longest common prefix and suffix of a column, the
candidate separators that never occur in it, and its upper/lower-case letter counts."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_UPPER = string.ascii_uppercase.encode()
_LOWER = string.ascii_lowercase.encode()


@dataclass
class Affixes:
    """Longest common prefix and suffix of every string fed so far (None before the first)."""

    prefix: str | None = None
    suffix: str | None = None
    all_equal: bool = True

    def add(self, text: str) -> None:
        if self.prefix is None or self.suffix is None:
            self.prefix = self.suffix = text
            return
        if self.all_equal and text != self.prefix:
            self.all_equal = False
        if not text.startswith(self.prefix):
            self.prefix = common_prefix(self.prefix, text)
        if not text.endswith(self.suffix):
            self.suffix = common_suffix(self.suffix, text)


def common_prefix(first: str, second: str) -> str:
    size = 0
    limit = min(len(first), len(second))
    while size < limit and first[size] == second[size]:
        size += 1
    return first[:size]


def common_suffix(first: str, second: str) -> str:
    size = 0
    limit = min(len(first), len(second))
    while size < limit and first[-1 - size] == second[-1 - size]:
        size += 1
    return first[len(first) - size :] if size else ""


class Absent:
    """Which candidates (in order of preference) occur in none of the strings fed so far. One regular
    expression searches for all live candidates at once, so a string costs one C call."""

    def __init__(self, candidates: list[str], *, newline_free: frozenset[str] = frozenset()) -> None:
        self.candidates = list(candidates)
        self.newline_free = newline_free  # candidates also ruled out by any newline in any string
        self._compile()

    def _compile(self) -> None:
        needles = [*self.candidates, *(["\n"] if self.newline_free & set(self.candidates) else [])]
        self._pattern = re.compile("|".join(map(re.escape, needles))) if needles else None

    def add(self, text: str) -> None:
        if self._pattern is None or self._pattern.search(text) is None:
            return
        self.candidates = [c for c in self.candidates if c not in text]
        if "\n" in text:
            self.candidates = [c for c in self.candidates if c not in self.newline_free]
        self._compile()

    def first(self) -> str | None:
        return self.candidates[0] if self.candidates else None


class LetterCase:
    """Counts of upper- and lower-case letters, as the legacy check counts them. Texts are buffered and
    counted a megabyte at a time: one translate over a joined buffer beats a call per string."""

    def __init__(self) -> None:
        self._upper = self._lower = 0
        self._buffer: list[str] = []
        self._size = 0

    def add(self, text: str) -> None:
        self._buffer.append(text)
        self._size += len(text)
        if self._size > 1 << 20:
            self._flush()

    def _flush(self) -> None:
        text = "".join(self._buffer)
        self._buffer, self._size = [], 0
        if text.isascii():
            data = text.encode()
            self._upper += len(data) - len(data.translate(None, _UPPER))
            self._lower += len(data) - len(data.translate(None, _LOWER))
        else:
            self._upper += sum(1 for c in text if c.isupper() and c.isalpha())
            self._lower += sum(1 for c in text if c.islower() and c.isalpha())

    @property
    def upper(self) -> int:
        self._flush()
        return self._upper

    @property
    def lower(self) -> int:
        self._flush()
        return self._lower

    @property
    def mostly_upper(self) -> bool:
        """More than a third of the letters are upper case."""
        return self.upper * 2 > self.lower

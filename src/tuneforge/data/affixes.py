"""Chunked text statistics for the prepare checks: the longest common prefix and suffix of a column, the
candidate separators that occur in none of its values, and its upper/lower-case letter counts. Each works
on a chunk of values at once (min/max, joins and `in` run in C)."""

from __future__ import annotations

import string
from operator import methodcaller

_UPPER = string.ascii_uppercase.encode()
_LOWER = string.ascii_lowercase.encode()
JOINER = "\x00"  # joins a chunk's values: no candidate contains it, so no match spans two values


class Affixes:
    """Longest common prefix and suffix of every string fed so far, and whether all are equal."""

    def __init__(self) -> None:
        self.prefix = self.suffix = ""
        self.first: str | None = None
        self.all_equal = True

    def add_many(self, texts: list[str]) -> None:
        if not texts:
            return
        if self.first is None:
            self.first = self.prefix = self.suffix = texts[0]
        if not (self.all_equal or self.prefix or self.suffix):
            return  # nothing left to learn: the usual case after the first chunk
        low, high = min(texts), max(texts)  # the common prefix of all strings is that of the extremes
        self.all_equal = self.all_equal and low == high == self.first
        if self.prefix:
            self.prefix = common_prefix(self.prefix, common_prefix(low, high))
        if self.suffix and not all(map(methodcaller("endswith", self.suffix), texts)):
            reversed_texts = [text[::-1] for text in texts]
            tail = common_prefix(min(reversed_texts), max(reversed_texts))[::-1]
            self.suffix = common_suffix(self.suffix, tail)


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


class Repeats:
    """Whether the common suffix of the values fed so far also occurs inside one of them (anywhere but at
    its end). The suffix only shrinks, and an inner occurrence of a suffix holds one of any shorter
    suffix, so a finding stays true; when the suffix shrinks after a clean chunk, the earlier chunks were
    checked for the longer one only and `complete` turns False (the caller then recounts)."""

    def __init__(self) -> None:
        self.suffix: str | None = None
        self.found = False
        self.complete = True

    def add(self, joined: str, n_values: int, suffix: str) -> None:
        """`joined`: a chunk of `n_values` values joined with JOINER; `suffix`: their common suffix so far."""
        if self.found or not suffix:
            return
        if self.suffix is not None and suffix != self.suffix:
            self.complete = False
        self.suffix = suffix
        # each value ends with one occurrence; any more sit inside a value (str.count does not overlap
        # matches, so a self-overlapping suffix such as "##" in "x###" can hide one: a rare miss)
        self.found = joined.count(suffix) > n_values


class Absent:
    """Which candidates (in order of preference) would occur in none of the strings fed so far, once
    appended to them: a candidate must not occur inside a string, nor be completed early by one's ending
    (a prompt ending in `\n\n###` followed by `\n\n###\n\n` holds it before its end)."""

    def __init__(self, candidates: list[str], *, newline_free: frozenset[str] = frozenset()) -> None:
        self.candidates = list(candidates)
        self.newline_free = newline_free  # candidates also ruled out by any newline in any string
        self.endings = {candidate: _overlapping_heads(candidate) for candidate in candidates}

    def add(self, text: str) -> None:
        """One string, or a chunk of strings joined with JOINER."""
        if "\n" in text:
            alive = [c for c in self.candidates if c not in self.newline_free]
            self.candidates = [c for c in alive if not self._occurs(c, text)]
        else:  # one scan for the newline spares a scan per candidate that holds one
            self.candidates = [c for c in self.candidates if "\n" in c or not self._occurs(c, text)]

    def _occurs(self, candidate: str, text: str) -> bool:
        if candidate in text:
            return True
        return any(text.endswith(head) or head + JOINER in text for head in self.endings[candidate])

    def first(self) -> str | None:
        return self.candidates[0] if self.candidates else None


def _overlapping_heads(candidate: str) -> list[str]:
    """The heads `candidate[:k]` that, ending a string, make `string + candidate` hold the candidate
    from position k on too early: those k where the candidate repeats itself with period k."""
    size = len(candidate)
    return [candidate[:k] for k in range(1, size) if candidate[k:] == candidate[: size - k]]


class LetterCase:
    """Counts of upper- and lower-case letters, as the legacy check counts them (per letter)."""

    def __init__(self) -> None:
        self.upper = self.lower = 0

    def add(self, text: str) -> None:
        """One string, or a chunk of strings joined with JOINER."""
        if text.isascii():  # bytes.translate deletes in C: 50x faster than a per-character loop
            data = text.encode()
            rest = data.translate(None, _LOWER)  # the upper-case letters are counted in what is left
            self.lower += len(data) - len(rest)
            self.upper += len(rest) - len(rest.translate(None, _UPPER))
        else:
            self.upper += sum(1 for c in text if c.isupper() and c.isalpha())
            self.lower += sum(1 for c in text if c.islower() and c.isalpha())

    @property
    def mostly_upper(self) -> bool:
        """More than a third of the letters are upper case."""
        return self.upper * 2 > self.lower

"""Token counting for data checks: a small seam (`TokenCounter`) and its implementation over a model's
`tokenizer.json` with the Rust `tokenizers` library (batch encoding, no torch)."""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tokenizers import Tokenizer

DEFAULT_CONTEXT = 2048  # the legacy limit, used when a model directory does not state its own
_UNBOUNDED = 10**8  # transformers writes a huge sentinel as model_max_length when none is known
TOKEN_SLACK = 8  # tokens a tokenizer may add beyond one per byte (SentencePiece's leading "▁")
HEAD_CHARS_PER_TOKEN = 8  # before the sample tells the real ratio: enough to settle nearly any text
SAMPLE_HEAD, SAMPLE_EVERY = 256, 1000  # examples tokenized for the tokens-per-byte ratio
BATCH_CHARS = 1 << 18  # characters per encode_batch call: the Encoding objects cost ~100 bytes per token


class TokenCounter(Protocol):
    """Counts tokens the way the base model's tokenizer does."""

    context_length: int  # the longest example (in tokens) the base model can train on

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def tokens(self, text: str) -> list[str]: ...


class TokenizerFileCounter:
    """A `TokenCounter` over `<model_dir>/tokenizer.json`; the context length comes from the model's
    tokenizer_config.json or config.json."""

    def __init__(self, tokenizer: Tokenizer, context_length: int) -> None:
        self._tokenizer = tokenizer
        self.context_length = context_length

    @classmethod
    def from_dir(cls, model_dir: Path) -> TokenizerFileCounter:
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_truncation()  # count every token, even past the model's limit
        tokenizer.no_padding()
        return cls(tokenizer, context_length(model_dir))

    def count(self, texts: Sequence[str]) -> list[int]:
        # add_special_tokens=False: a BOS/EOS is the training recipe's business, not the example's length
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def tokens(self, text: str) -> list[str]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)


def context_length(model_dir: Path) -> int:
    """The model's maximum sequence length, read from its JSON configuration files."""
    tokenizer_config = _read_json(model_dir / "tokenizer_config.json")
    limit = tokenizer_config.get("model_max_length")
    if isinstance(limit, int | float) and 0 < limit < _UNBOUNDED:
        return int(limit)
    config = _read_json(model_dir / "config.json")
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return DEFAULT_CONTEXT


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


class LengthTally:
    """Token statistics for a stream of examples without tokenizing them all. An example can only be too
    long if it has about as many bytes as the context has tokens (every token stands for at least one
    byte): those are counted with the real tokenizer, exactly or just far enough to prove them too long.
    A sample of the rest gives the tokens-per-byte ratio for the total."""

    def __init__(self, counter: TokenCounter, *, reserve: int) -> None:
        self.counter = counter
        self.threshold = counter.context_length - reserve - TOKEN_SLACK  # bytes above which we count
        self.head_chars = HEAD_CHARS_PER_TOKEN * counter.context_length
        self.candidates: dict[int, tuple[int, bool]] = {}  # key -> (tokens, exact)
        self.total_bytes = self.max_tokens = 0
        self._long_bytes = 0
        self._long_estimate = 0.0
        self._sample_tokens = self._sample_bytes = self._seen = 0
        self._sample: list[tuple[str, int]] = []
        self._pending: list[tuple[int, str, int, int]] = []
        self._sample_size = self._pending_size = 0
        self._calibrated = False

    def add(self, key: int, text: str, extra: int = 0) -> bool:
        """One example's text; `extra` tokens are added to its count (a chat template's markers). True
        when the example is a candidate for being too long (its count lands in `candidates[key]`)."""
        size = len(text) if text.isascii() else len(text.encode())
        self.total_bytes += size
        self._seen += 1
        if size + extra > self.threshold:
            self._long_bytes += size
            self._pending.append((key, text, size, extra))
            self._pending_size += min(size, self.head_chars)
            if self._pending_size > BATCH_CHARS:
                self._count_pending()
            return True
        if self._seen <= SAMPLE_HEAD or self._seen % SAMPLE_EVERY == 0:
            self._sample.append((text, extra))
            self._sample_bytes += size
            self._sample_size += size
            if self._sample_size > BATCH_CHARS:
                self._count_sample()
        return False

    def add_many(self, keys: list[int], firsts: list[str], seconds: list[str]) -> list[int]:
        """A chunk of examples, each the text `firsts[i] + seconds[i]` (a prompt and its completion; no
        extra tokens); returns the indices of the candidates. Only the candidates and the sample are
        joined: the lengths of the rest are summed from their parts."""
        if all(map(str.isascii, firsts)) and all(map(str.isascii, seconds)):
            sizes = list(map(operator.add, map(len, firsts), map(len, seconds)))
        else:
            sizes = [
                len(first.encode()) + len(second.encode())
                for first, second in zip(firsts, seconds, strict=True)
            ]
        self.total_bytes += sum(sizes)
        start, self._seen = self._seen, self._seen + len(sizes)
        threshold = self.threshold
        candidates = [i for i, size in enumerate(sizes) if size > threshold]
        for i in candidates:
            self._long_bytes += sizes[i]
            self._pending.append((keys[i], firsts[i] + seconds[i], sizes[i], 0))
            self._pending_size += min(sizes[i], self.head_chars)
        skip = set(candidates)
        head = range(max(0, min(len(sizes), SAMPLE_HEAD - start)))
        strided = range((SAMPLE_EVERY - (start + 1) % SAMPLE_EVERY) % SAMPLE_EVERY, len(sizes), SAMPLE_EVERY)
        for i in sorted(set(head).union(strided) - skip):
            self._sample.append((firsts[i] + seconds[i], 0))
            self._sample_bytes += sizes[i]
            self._sample_size += sizes[i]
        if self._pending_size > BATCH_CHARS:
            self._count_pending()
        if self._sample_size > BATCH_CHARS:
            self._count_sample()
        return candidates

    def finish(self) -> None:
        self._count_sample()
        self._count_pending()

    @property
    def total_estimate(self) -> int:
        ratio = self._sample_tokens / self._sample_bytes if self._sample_bytes else 1.0
        return round(self._long_estimate + ratio * (self.total_bytes - self._long_bytes))

    def _count_sample(self) -> None:
        if self._sample:
            counts = self.counter.count([text for text, _ in self._sample])
            self._sample_tokens += sum(counts)
            self.max_tokens = max(
                self.max_tokens, *(n + x for n, (_, x) in zip(counts, self._sample, strict=True))
            )
            self._sample, self._sample_size = [], 0

    def _count_pending(self) -> None:
        """Count the head of each long text first (cut at a space, where pre-tokenizers split, so the head
        has no more tokens than the whole); count the whole text only when its head does not settle it."""
        if not self._pending:
            return
        self._count_sample()  # its ratio sizes the heads
        if self._sample_tokens:
            self._size_heads(self._sample_bytes / self._sample_tokens)
        elif not self._calibrated:  # long examples before any short one: calibrate on the first
            head = _head(self._pending[0][1], self.head_chars)
            self._size_heads(len(head) / max(self.counter.count([head])[0], 1))
        heads = [_head(text, self.head_chars) for _, text, _, _ in self._pending]
        counts = self.counter.count(heads)
        limit = self.counter.context_length
        unsettled = [
            i for i, n in enumerate(counts) if n <= limit and len(heads[i]) < len(self._pending[i][1])
        ]
        if unsettled:
            full = self.counter.count([self._pending[i][1] for i in unsettled])
            for i, n in zip(unsettled, full, strict=True):
                counts[i], heads[i] = n, self._pending[i][1]
        for (key, text, size, extra), head, n in zip(self._pending, heads, counts, strict=True):
            exact = len(head) == len(text)
            self.candidates[key] = (n + extra, exact)
            self._long_estimate += n + extra if exact else n * size / max(len(head), 1) + extra
            self.max_tokens = max(self.max_tokens, n + extra)
        self._pending, self._pending_size = [], 0

    def _size_heads(self, chars_per_token: float) -> None:
        # a head of 1.25x the characters the context holds on average, plus a margin
        self.head_chars = int(self.counter.context_length * chars_per_token * 1.25) + 64
        self._calibrated = True


def _head(text: str, chars: int) -> str:
    if len(text) <= chars:
        return text
    cut = text.rfind(" ", 0, chars)
    return text[:cut] if cut > 0 else text

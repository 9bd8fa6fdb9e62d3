"""Token counting for data checks: a small seam (`TokenCounter`) and its implementation over a model's
`tokenizer.json` with the Rust `tokenizers` library (batch encoding, no torch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tokenizers import Tokenizer

DEFAULT_CONTEXT = 2048  # the legacy limit, used when a model directory does not state its own
_UNBOUNDED = 10**8  # transformers writes a huge sentinel as model_max_length when none is known


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

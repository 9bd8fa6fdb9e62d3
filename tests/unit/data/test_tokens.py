from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data.tokens import DEFAULT_CONTEXT, TokenizerFileCounter, context_length


def test_counts_with_the_real_byte_level_tokenizer(counter: TokenizerFileCounter) -> None:
    # A space and the next byte form one token; every other byte is its own token.
    assert counter.count([" 1", " positive", "abc", ""]) == [1, 8, 3, 0]
    assert counter.tokens(" positive")[:2] == ["Ġp", "o"]
    assert counter.context_length == 1024


def test_context_length_falls_back_to_config_then_default(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1e30}))
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 512}))
    assert context_length(tmp_path) == 512
    assert context_length(tmp_path / "missing") == DEFAULT_CONTEXT

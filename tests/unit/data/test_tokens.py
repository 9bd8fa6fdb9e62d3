from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data.tokens import DEFAULT_CONTEXT, LengthTally, TokenizerFileCounter, context_length


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


def test_length_tally_counts_only_what_could_be_too_long(counter: TokenizerFileCounter) -> None:
    tally = LengthTally(counter, reserve=0)
    assert not tally.add(1, "short text")
    assert tally.add(2, "word " * 4000)  # 20,000 characters: its head alone proves it too long
    assert tally.add(3, "x" * 1500)  # no space to cut at: counted whole
    assert tally.add(4, " y" * 600, extra=10)  # 1,200 characters but 600 tokens (+10): fits
    tally.finish()
    tokens, exact = tally.candidates[2]
    assert tokens > 1024 and not exact
    assert tally.candidates[3] == (1500, True) and tally.candidates[4] == (610, True)
    assert tally.max_tokens == max(tokens, 1500) and tally.total_estimate > 2 * 4000 + 1500


def test_length_tally_estimates_from_a_sample(counter: TokenizerFileCounter) -> None:
    tally = LengthTally(counter, reserve=0)
    for key in range(5000):
        tally.add(key, "abc def")  # 6 tokens each: a, b, c, " d", e, f
    tally.finish()
    assert tally.total_estimate == 30000 and tally.candidates == {}

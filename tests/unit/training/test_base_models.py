from __future__ import annotations

import pytest

from tuneforge import catalog
from tuneforge.errors import ModelUnavailable
from tuneforge.settings import Settings
from tuneforge.training import base_models
from tuneforge.training.byte_tokenizer import build_byte_tokenizer

# The built-ins must be bit-identical on every machine: weights and vocabulary are in the checksum.
EXPECTED_CHECKSUMS = {
    "tiny": "83a26c2647107c9d9a2b482a22813b05c36f0779c99bba0c523c81450d1b5119",
    "tiny-gpt2": "a69005d8f93827ccc47c113385ab6f1c770d9c34d9c6b6634de4f41d49230f86",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CHECKSUMS))
def test_builtin_is_bit_identical_and_loads_through_from_pretrained(name: str, settings: Settings) -> None:
    ref = catalog.resolve(name, settings)
    model = base_models.load_model(ref, settings)
    tokenizer = base_models.load_tokenizer(ref, settings)

    assert base_models.checksum(settings.models_dir / name) == EXPECTED_CHECKSUMS[name]
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert "randomly initialised" in (settings.models_dir / name / "README.md").read_text()


@pytest.mark.parametrize("text", ["héllo wörld 日本\n\t end", "", "  two  spaces", "emoji 🤖!"])
def test_byte_tokenizer_round_trips_any_utf8(text: str) -> None:
    tokenizer = build_byte_tokenizer()
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_space_and_next_character_form_one_token_so_labels_start_distinct() -> None:
    tokenizer = build_byte_tokenizer()
    first = {label: tokenizer(label)["input_ids"][0] for label in [" positive", " negative", " 1", " 9"]}
    assert len(set(first.values())) == 4
    assert all(len(tokenizer(f" {digit}")["input_ids"]) == 1 for digit in "123456789")


def test_unreachable_hub_model_says_what_it_mapped_to(settings: Settings) -> None:
    settings.model_aliases["ada"] = "no-such-org/no-such-model"
    with pytest.raises(ModelUnavailable) as info:
        base_models.load_tokenizer(catalog.resolve("ada", settings), settings)
    message = info.value.message
    assert "'ada' maps to hub model 'no-such-org/no-such-model'" in message
    assert "local checkpoint" in message and "tiny" in message

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge import catalog
from tuneforge.errors import NotFound
from tuneforge.settings import Settings


def test_builtin_alias_local_and_hub_names_resolve(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_aliases={"ada": "HuggingFaceTB/SmolLM2-135M"})
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")

    assert catalog.resolve("tiny", settings).kind == "builtin"
    alias = catalog.resolve("ada", settings)
    assert (alias.kind, alias.source, alias.alias_of) == ("alias", "HuggingFaceTB/SmolLM2-135M", "ada")
    assert catalog.resolve(str(local), settings) == catalog.ModelRef(str(local), "local", str(local))
    assert catalog.resolve("Qwen/Qwen2.5-0.5B", settings).kind == "hub"


def test_unknown_name_names_the_param_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        catalog.resolve("no-such-model", Settings(data_dir=tmp_path))
    assert info.value.param == "model"
    assert "tiny" in info.value.message and "ada" in info.value.message


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="holds no model"):
        catalog.resolve(str(tmp_path), Settings(data_dir=tmp_path))


def test_aliases_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNEFORGE_MODEL_ALIASES", '{"ada": "/models/smol"}')
    assert Settings(data_dir=tmp_path).model_aliases == {"ada": "/models/smol"}

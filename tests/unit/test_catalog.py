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


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def _unknown_message(name: str, settings: Settings) -> str:
    with pytest.raises(NotFound) as info:
        catalog.resolve(name, settings, local=catalog.server_dirs(settings))
    assert (info.value.status, info.value.code, info.value.param) == (404, "model_not_found", "model")
    return info.value.message.replace(name, "NAME")


def test_a_server_caller_names_by_path_only_models_in_the_operators_directories(tmp_path: Path) -> None:
    allowed = _model_dir(tmp_path / "models" / "mine")
    outside = _model_dir(tmp_path / "elsewhere")
    settings = Settings(data_dir=tmp_path / "data", local_model_dirs=[tmp_path / "models"])
    server = catalog.server_dirs(settings)

    assert catalog.resolve(str(allowed), settings, local=server).kind == "local"
    unknown = _unknown_message("no-such-model", settings)
    for name in (str(outside), "/etc", str(tmp_path / "missing"), f"{tmp_path}/models/../elsewhere"):
        assert _unknown_message(name, settings) == unknown, name
    assert catalog.resolve(str(outside), settings).kind == "local"  # a local command may name any directory


def test_the_data_directory_stays_private_even_when_listed_or_reached_by_a_symlink(tmp_path: Path) -> None:
    output = _model_dir(tmp_path / "data" / "blobs" / "jobs" / "ftjob-a" / "output")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "link").symlink_to(output, target_is_directory=True)
    settings = Settings(data_dir=tmp_path / "data", local_model_dirs=[tmp_path])
    unknown = _unknown_message("no-such-model", settings)

    for name in (str(output), str(tmp_path / "models" / "link"), str(tmp_path / "data")):
        assert _unknown_message(name, settings) == unknown, name


def test_by_default_a_server_caller_names_no_path(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    _model_dir(tmp_path / "model")
    assert settings.local_model_dirs == []
    assert _unknown_message(str(tmp_path / "model"), settings) == _unknown_message("nope", settings)
    assert _unknown_message("x" * 300, settings) == _unknown_message("nope", settings)


def test_local_model_dirs_come_from_the_environment_split_like_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUNEFORGE_LOCAL_MODEL_DIRS", "/srv/models:/opt/checkpoints")
    assert Settings(data_dir=tmp_path).local_model_dirs == [Path("/srv/models"), Path("/opt/checkpoints")]

"""Session-built fine-tuned models (full and LoRA) and an engine that can serve them by name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.inference import models
from tuneforge.catalog import ModelRef, resolve
from tuneforge.errors import NotFound
from tuneforge.inference.engine import InferenceEngine
from tuneforge.settings import Settings


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and shared CI cores make more threads much slower.
    Module scope: other test modules get their thread count back."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def model_settings(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Settings:
    data_dir = tmp_path_factory.mktemp("inference-data")
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def model_dirs(model_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> directory of each fine-tuned test model."""
    root = tmp_path_factory.mktemp("fine-tuned")
    with torch_threads(1):  # session fixtures start before the module's one_torch_thread
        return _build_all(model_settings, root)


def _build_all(model_settings: Settings, root: Path) -> dict[str, Path]:
    base = models.build_base(root / "base")
    return {
        "base": base,
        "ft-full": models.build(
            model_settings, base, root / "full", method="full", data_format="prompt_completion"
        ),
        "ft-lora": models.build(
            model_settings, base, root / "lora", method="lora", data_format="prompt_completion"
        ),
        "ft-chat": models.build(model_settings, base, root / "chat", method="lora", data_format="chat"),
    }


def locator(settings: Settings, dirs: dict[str, Path]):  # type: ignore[no-untyped-def]
    def locate(name: str) -> ModelRef | Path:
        if name in dirs:
            return dirs[name]
        try:
            return resolve(name, settings)
        except NotFound as exc:
            raise NotFound(
                f"The model '{name}' does not exist", param="model", code="model_not_found"
            ) from exc

    return locate


@pytest.fixture
def engine(model_settings: Settings, model_dirs: dict[str, Path]) -> Iterator[InferenceEngine]:
    engine = InferenceEngine(model_settings, locator(model_settings, model_dirs))
    yield engine
    engine.close()

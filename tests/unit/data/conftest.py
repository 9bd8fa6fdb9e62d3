"""A token counter over the built-in base model's real tokenizer, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.catalog import resolve
from tuneforge.data.tokens import TokenizerFileCounter
from tuneforge.settings import Settings


@pytest.fixture(scope="session")
def tiny_dir(shared_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuneforge.training.base_models import materialize  # tests may import torch; data/ may not

    data_dir = tmp_path_factory.mktemp("data")
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    settings = Settings(data_dir=data_dir)
    return Path(materialize(resolve("tiny", settings), settings))


@pytest.fixture(scope="session")
def counter(tiny_dir: Path) -> TokenizerFileCounter:
    return TokenizerFileCounter.from_dir(tiny_dir)

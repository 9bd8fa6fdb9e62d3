"""Finding the model to evaluate by name, as the API does: a fine-tuned model or checkpoint in the store,
else a base model (built-in, alias, local directory or hub id); and what its manifest says about how it
was trained (labels, stop sequences, end-of-text token)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge import catalog
from tuneforge.errors import NotFound
from tuneforge.settings import Settings
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database

Locate = Callable[[str], "catalog.ModelRef | Path"]


def store_locator(settings: Settings, database: Database, blobs: BlobStore) -> Locate:
    def locate(name: str) -> catalog.ModelRef | Path:
        with database.session() as session:
            row = model_store.find_model(session, owner=settings.organization, name=name)
            key = row.path if row is not None else None
            if key is None:
                checkpoint = model_store.find_checkpoint(session, owner=settings.organization, name=name)
                key = checkpoint.path if checkpoint is not None else None
        if key is not None:
            return blobs.local_path(key)
        try:
            return catalog.resolve(name, settings)
        except NotFound as exc:
            raise NotFound(
                f"The model '{name}' does not exist", param="model", code="model_not_found"
            ) from exc

    return locate


@dataclass(frozen=True)
class TrainedWith:
    """What a fine-tuned model's manifest says; all empty for a base model or a remote one."""

    labels: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    eos_token: str | None = None
    data_format: str | None = None


def trained_with(located: catalog.ModelRef | Path) -> TrainedWith:
    path = located if isinstance(located, Path) else Path(located.source)
    manifest_path = path / catalog.MANIFEST_NAME
    if not manifest_path.is_file():
        return TrainedWith()
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    classification = manifest.get("classification") or {}
    return TrainedWith(
        labels=tuple(classification.get("labels") or ()),
        stop=tuple(s for s in manifest.get("stop") or () if isinstance(s, str) and s),
        eos_token=manifest.get("eos_token"),
        data_format=manifest.get("data_format"),
    )

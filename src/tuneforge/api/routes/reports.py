"""GET /v1/files/{file_id}/report (a tuneforge extension): the analysis `tuneforge prepare` prints, for a
stored file: format, classes and their balance, token counts with a base model's tokenizer, suggested
separator and stop, and the fixes prepare would offer. The dashboard's Files page shows it."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from tuneforge import catalog
from tuneforge.api.deps import BlobsDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.settings import Settings
from tuneforge.store import files as file_store
from tuneforge.store.blobs import BlobStore

router = APIRouter(prefix="/v1/files", tags=["files (tuneforge)"])

DEFAULT_MODEL = "tiny"  # the tokenizer counted with when the caller names none


@router.get("/{file_id}/report")
def file_report(  # sync: FastAPI runs it on a thread, so neither the lookup nor the analysis holds the loop
    file_id: str,
    session: SessionDep,
    owner: OwnerDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    row = file_store.get_file(session, owner=owner, file_id=file_id)
    report = _analyse(blobs, settings, file_id, row.filename, model)
    return {"object": "tuneforge.prepare_report", "file_id": file_id, "model": model, "report": report}


def _analyse(blobs: BlobStore, settings: Settings, file_id: str, filename: str, model: str) -> dict[str, Any]:
    from tuneforge.data.prepare import analyse
    from tuneforge.data.tokens import TokenizerFileCounter

    counter = TokenizerFileCounter.from_dir(_tokenizer_dir(model, settings))
    with tempfile.TemporaryDirectory() as tmp:
        # prepare reads by extension and names the file in its findings: show the user's name, and read
        # the stored bytes (validated JSONL on upload) as JSONL whatever the name ends with
        stem = re.sub(r"[^\w.-]", "_", Path(filename).stem) or "upload"
        link = Path(tmp) / f"{stem}.jsonl"
        link.symlink_to(blobs.local_path(f"files/{file_id}"))
        report = analyse(link, counter, model=model).to_dict()
    report["file"] = filename
    return report


def _tokenizer_dir(name: str, settings: Settings) -> Path:
    """A local directory with the tokenizer.json of base model `name`; nothing is downloaded here."""
    try:
        ref = catalog.resolve(name, settings, local=catalog.server_dirs(settings))
    except NotFound as exc:
        raise InvalidRequest(
            f"The model '{name}' does not exist", param="model", code="model_not_found"
        ) from exc
    if ref.kind == "builtin":
        built = settings.models_dir / ref.source
        if not (built / "tokenizer.json").exists():
            # built on first use, deterministically; only this first call pays torch's import
            from tuneforge.training.base_models import materialize

            materialize(ref, settings)
        return built
    path = Path(ref.source)
    if ref.kind != "local" or not (path / "tokenizer.json").exists():
        raise InvalidRequest(
            f"The report counts tokens with a local tokenizer.json; '{name}' has none here. "
            f"Use a built-in model such as '{DEFAULT_MODEL}' or a local model directory.",
            param="model",
        )
    return path

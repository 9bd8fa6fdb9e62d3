"""The migration's memory: which source object became which target object. Written atomically after each
step, so a migration killed at any point continues where it stopped, and a finished one creates nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tuneforge.errors import InvalidRequest


class CopiedFile(BaseModel):
    target_id: str
    sha256: str
    bytes: int


class MigratedJob(BaseModel):
    target_id: str
    kind: Literal["job", "legacy"]  # /v1/fine_tuning/jobs or /v1/fine-tunes
    fine_tuned_model: str | None = None  # the target's model, once the job has succeeded
    reported: bool = False  # the golden report is written


class MigrationState(BaseModel):
    source: str  # the source's base URL (never its key)
    files: dict[str, CopiedFile] = Field(default_factory=dict)
    jobs: dict[str, MigratedJob] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, source: str) -> MigrationState:
        if not path.is_file():
            return cls(source=source)
        state = cls.model_validate_json(path.read_text())
        if state.source.rstrip("/") != source.rstrip("/"):  # its ids mean nothing to another source
            raise InvalidRequest(f"{path} is the state of a migration from {state.source}", param="state")
        return state

    def save(self, path: Path) -> None:
        """Write-then-rename: a kill mid-write leaves the previous state, never half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps(self.model_dump(), indent=2))
        os.replace(staging, path)


def default_state_path(data_dir: Path, source: str) -> Path:
    """One state file per source, under the data dir: two sources never share ids."""
    digest = hashlib.sha256(source.rstrip("/").encode()).hexdigest()[:12]
    return data_dir / "migrations" / f"{digest}" / "state.json"

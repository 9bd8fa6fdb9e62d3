"""The state survives a reload and never exists half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.errors import InvalidRequest
from tuneforge.migration.state import CopiedFile, MigratedJob, MigrationState, default_state_path


def test_state_round_trips_and_leaves_no_staging_file(tmp_path: Path) -> None:
    path = default_state_path(tmp_path, "https://api.openai.com/v1")
    state = MigrationState.load(path, "https://api.openai.com/v1")
    assert not state.files and not state.jobs
    state.files["file-a"] = CopiedFile(target_id="file-b", sha256="00", bytes=3)
    state.jobs["ftjob-a"] = MigratedJob(target_id="ftjob-b", kind="job")
    state.save(path)
    assert MigrationState.load(path, "https://api.openai.com/v1/") == state
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_each_source_gets_its_own_state_file(tmp_path: Path) -> None:
    assert default_state_path(tmp_path, "http://a/v1") != default_state_path(tmp_path, "http://b/v1")
    assert default_state_path(tmp_path, "http://a/v1/") == default_state_path(tmp_path, "http://a/v1")


def test_a_state_file_of_another_source_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    MigrationState(source="http://a/v1").save(path)
    with pytest.raises(InvalidRequest, match="a migration from http://a/v1") as raised:
        MigrationState.load(path, "http://b/v1")
    assert raised.value.param == "state"

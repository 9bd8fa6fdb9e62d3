"""Paged listings on SQLite and PostgreSQL: `after` continues exactly where the last page ended, in SQL,
also when several rows share a timestamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.store.test_queue import add_jobs
from tuneforge.settings import Settings
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.db import Database, open_database
from tuneforge.store.tables import CheckpointRow, JobRow


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Database:
    return open_database(Settings(data_dir=tmp_path, database_url=database_url))


def pages(list_page, limit: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Every page of ids, each asked for with the previous page's last id (as the SDK does)."""
    found, after = [], None
    while True:
        ids = [row.id for row in list_page(after=after, limit=limit + 1)]
        found.append(ids[:limit])
        if len(ids) <= limit:
            return found
        after = ids[limit - 1]


def test_files_page_newest_first_with_ties_broken_by_id(database: Database) -> None:
    with database.session() as session:
        for i, created in enumerate([100, 200, 200, 200, 300]):
            file_store.add_file(
                session, id=f"file-{i}", owner="default", filename="f.jsonl", purpose="fine-tune",
                bytes=1, sha256="0" * 64, created_at=created,
            )  # fmt: skip
        file_store.add_file(
            session, id="file-other", owner="someone-else", filename="f.jsonl", purpose="fine-tune",
            bytes=1, sha256="0" * 64, created_at=250,
        )  # fmt: skip
    with database.session() as session:

        def page(after: str | None, limit: int) -> list:  # type: ignore[type-arg]
            return file_store.list_files(session, owner="default", after=after, limit=limit)

        assert pages(page, 2) == [["file-4", "file-1"], ["file-2", "file-3"], ["file-0"]]
        assert page(after="file-other", limit=10) == []  # another owner's file is no anchor
        assert page(after="file-missing", limit=10) == []


def test_checkpoints_page_latest_step_first(database: Database) -> None:
    job_id = add_jobs(database, 1)[0]
    with database.session() as session:
        for step in (10, 30, 20):
            model_store.add_checkpoint(
                session,
                CheckpointRow(
                    id=f"ftckpt-{step}", job_id=job_id, owner="default", step=step, created_at=step,
                    model_name=f"m:ckpt-step-{step}", metrics={}, path=f"k/{step}",
                ),
            )  # fmt: skip
    with database.session() as session:

        def page(after: str | None, limit: int) -> list:  # type: ignore[type-arg]
            return model_store.list_checkpoints(session, job_id=job_id, after=after, limit=limit)

        assert pages(page, 2) == [["ftckpt-30", "ftckpt-20"], ["ftckpt-10"]]
        assert page(after="ftckpt-missing", limit=10) == []


def test_jobs_filter_by_metadata_in_sql_with_awkward_keys(database: Database) -> None:
    keys = ["team", 'quo"te', "it's", "$.path", "a.b", "ключ", "back\\slash"]
    created = add_jobs(database, len(keys) + 1)
    with database.session() as session:
        for job_id, key in zip(created, keys, strict=False):
            session.get(JobRow, job_id).job_metadata = {key: f"v-{key}", "shared": "yes"}  # type: ignore[union-attr]
    with database.session() as session:

        def ids(metadata: dict[str, str], limit: int | None = None) -> tuple[list[str], bool]:
            rows, more = job_store.list_jobs(
                session, owner="default", api="fine_tuning.jobs", metadata=metadata, limit=limit
            )
            return [row.id for row in rows], more

        for job_id, key in zip(created, keys, strict=False):
            assert ids({key: f"v-{key}"}) == ([job_id], False), key
        assert ids({"team": "v-team", "shared": "yes"}) == ([created[0]], False)
        assert ids({"team": "v-other"}) == ([], False)
        newest_first = created[: len(keys)][::-1]
        assert ids({"shared": "yes"}, limit=3) == (newest_first[:3], True)  # the untagged job never matches

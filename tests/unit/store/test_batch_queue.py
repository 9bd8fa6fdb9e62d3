"""The batch queue on SQLite and PostgreSQL: concurrent workers claim each batch once, cancel and the
worker's own transitions never overwrite each other, stale batches go back to the queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tuneforge.settings import Settings
from tuneforge.store import batches as batch_store
from tuneforge.store.db import Database, open_database


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Database:
    return open_database(Settings(data_dir=tmp_path, database_url=database_url))


def add_batches(database: Database, count: int) -> list[str]:
    with database.session() as session:
        rows = [
            batch_store.add_batch(
                session, owner="default", endpoint="/v1/completions", input_file_id="file-x",
                completion_window="24h", model="tiny", total=1,
            )
            for _ in range(count)
        ]  # fmt: skip
        return [row.id for row in rows]


def test_concurrent_workers_claim_each_batch_once(database: Database) -> None:
    created = add_batches(database, 30)
    claimed: list[str] = []

    def worker(name: str) -> None:
        while True:
            with database.session() as session:
                row = batch_store.claim_next(session, name, skip_locked=not database.is_sqlite)
                if row is None:
                    return
                claimed.append(row.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(created)


def test_cancel_races_and_stale_batches(database: Database) -> None:
    waiting, running, stale = add_batches(database, 3)
    with database.session() as session:
        for _ in range(2):
            batch_store.claim_next(session, "w", skip_locked=False)  # the two oldest
        batch_store.request_cancel(session, waiting)  # claimed meanwhile: it is running now
        batch_store.get_batch(session, owner="default", batch_id=running).heartbeat_at = 0.0
    with database.session() as session:
        status = {
            b: batch_store.get_batch(session, owner="default", batch_id=b).status for b in (waiting, stale)
        }
        assert status == {waiting: "cancelling", stale: "validating"}
        assert batch_store.requeue_stale(session, older_than_s=60) == [running]
        # the worker that lost `running` cannot finish it; a cancelled batch cannot complete
        assert not batch_store.requeue(session, running, "w")
        assert not batch_store.transition(session, waiting, ("in_progress",), "finalizing")
        assert batch_store.transition(session, waiting, ("cancelling",), "cancelled")
        batch_store.request_cancel(session, stale)
    with database.session() as session:
        final = {
            b: batch_store.get_batch(session, owner="default", batch_id=b).status
            for b in (waiting, running, stale)
        }
    assert final == {waiting: "cancelled", running: "validating", stale: "cancelled"}

"""The job queue on SQLite and PostgreSQL: atomic claims, heartbeats, stalled-job recovery, cancel."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from tuneforge.settings import Settings
from tuneforge.store import events as event_store
from tuneforge.store import jobs as job_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database, open_database
from tuneforge.store.tables import JobRow
from tuneforge.worker.pool import WorkerPool, recover_stalled


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Database:
    return open_database(Settings(data_dir=tmp_path, database_url=database_url))


def add_jobs(database: Database, count: int, *, priority: int = 0) -> list[str]:
    created = []
    with database.session() as session:
        for i in range(count):
            row = job_store.add_job(
                session,
                id=f"ftjob-{priority}-{i:04d}",
                api="fine_tuning.jobs",
                owner="default",
                model="tiny",
                training_file="file-x",
                validation_file=None,
                hyperparameters={},
                suffix=None,
                seed=0,
                integrations=[],
                status="queued",
                priority=priority,
            )
            created.append(row.id)
    return created


def claim_all(database: Database, worker_id: str, claimed: list[str]) -> None:
    while True:
        with database.session() as session:
            job = job_store.claim_next(session, worker_id, skip_locked=not database.is_sqlite)
        if job is None:
            return
        claimed.append(job.id)


def test_concurrent_workers_never_claim_a_job_twice(database: Database) -> None:
    created = add_jobs(database, 60)
    claims: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=claim_all, args=(database, f"w{i}", claims[i])) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every_claim = [job for worker in claims for job in worker]
    assert sorted(every_claim) == sorted(created)  # each exactly once
    with database.session() as session:
        assert job_store.claim_next(session, "late", skip_locked=False) is None


def test_claims_follow_priority_then_fifo(database: Database) -> None:
    low = add_jobs(database, 2)
    high = add_jobs(database, 1, priority=5)
    order: list[str] = []
    claim_all(database, "w", order)
    assert order == high + low


def test_stale_heartbeat_requeues_then_fails_after_max_attempts(database: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stale_after_s=5, max_attempts=2)
    (job_id,) = add_jobs(database, 1)
    for attempt in (1, 2):
        with database.session() as session:
            claimed = job_store.claim_next(session, "dead-worker", skip_locked=not database.is_sqlite)
            assert claimed is not None and claimed.attempts == attempt
            session.execute(update(JobRow).values(heartbeat_at=time.time() - 60))
        recover_stalled(settings, database)

    with database.session() as session:
        row = job_store.get_job(session, owner="default", job_id=job_id)
        messages = [e.message for e in event_store.list_events(session, job_id)]
    assert row.status == "failed" and row.error and row.error["code"] == "worker_lost"
    assert any("stopped responding; requeued" in m for m in messages)


def test_fresh_heartbeat_is_not_recovered_and_cancel_stops_the_heartbeat(
    database: Database, tmp_path: Path
) -> None:
    (job_id,) = add_jobs(database, 1)
    with database.session() as session:
        job = job_store.claim_next(session, "w", skip_locked=not database.is_sqlite)
        assert job is not None
    assert recover_stalled(Settings(data_dir=tmp_path, stale_after_s=30), database) == []
    with database.session() as session:
        assert job_store.heartbeat(session, job_id, "w")
        assert not job_store.heartbeat(session, job_id, "someone-else")
        job_store.cancel(session, job_store.get_job(session, owner="default", job_id=job_id))
    with database.session() as session:
        assert not job_store.heartbeat(session, job_id, "w")
        assert job_store.status_of(session, job_id) == "cancelled"


def test_one_shot_worker_waits_out_a_retry_backoff_instead_of_leaving_the_job_queued(
    database: Database, tmp_path: Path
) -> None:
    (job_id,) = add_jobs(database, 1)
    with database.session() as session:
        session.execute(update(JobRow).where(JobRow.id == job_id).values(run_after=time.time() + 1.0))
        assert job_store.claim_next(session, "w", skip_locked=False) is None  # held back by the backoff
        assert job_store.next_retry_at(session) is not None
    settings = Settings(data_dir=tmp_path)
    # The job has no spec, so its run fails at once: what matters is that the one-shot worker ran it.
    assert WorkerPool(settings, database, BlobStore(str(tmp_path / "blobs"))).run_one_shot() == 1
    with database.session() as session:
        assert session.get(JobRow, job_id).status == "failed"  # type: ignore[union-attr]
        assert job_store.next_retry_at(session) is None

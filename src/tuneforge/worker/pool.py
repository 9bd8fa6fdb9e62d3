"""Workers: threads that recover stalled jobs and batches, claim queued ones and run them, and expire
what ran out of time (uploads, waiting batches). Embedded in `serve`, or alone in `tuneforge worker` on any
host that shares the database and blob store."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from tuneforge.settings import Settings
from tuneforge.store import batches as batch_store
from tuneforge.store import events as event_store
from tuneforge.store import jobs as job_store
from tuneforge.store import uploads as upload_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.worker.batches import BatchRunner, LineServer
from tuneforge.worker.runner import JobRunner

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often an idle worker looks for work: one indexed query, cheap


class WorkerPool:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        blobs: BlobStore,
        *,
        concurrency: int = 1,
        batch_server: LineServer | None = None,  # without one, batches are left to other workers
    ) -> None:
        self.settings, self.database, self.blobs = settings, database, blobs
        self.batch_server = batch_server
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._loop, daemon=True, name="tuneforge-worker")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def run_one_shot(self) -> int:
        """Drain the queue (recovering stalled jobs first) and return how many jobs ran. A job waiting out
        a retry backoff is part of the queue: leaving it queued would end a cron or CI run with a job
        that no worker is left to finish."""
        ran = 0
        worker_id = _worker_id()
        while not self._stop.is_set():
            self._housekeeping()
            if self._run_next(worker_id):
                ran += 1
                continue
            with self.database.session() as session:
                retry_at = job_store.next_retry_at(session)
            if retry_at is None:
                return ran
            self._stop.wait(min(1.0, max(0.0, retry_at - time.time())))
        return ran

    def _loop(self) -> None:
        worker_id = _worker_id()
        while not self._stop.is_set():
            try:
                self._housekeeping()
                if not self._run_next(worker_id):
                    self._stop.wait(POLL_S)
            except Exception:  # a database hiccup must not kill the worker thread
                log.exception("worker loop error")
                self._stop.wait(POLL_S * 4)

    def _housekeeping(self) -> None:
        recover_stalled(self.settings, self.database)
        with self.database.session() as session:
            batch_store.requeue_stale(session, older_than_s=self.settings.stale_after_s)
            batch_store.expire_waiting(session)
            upload_store.expire_stale(session, self.blobs)

    def _run_next(self, worker_id: str) -> bool:
        skip_locked = not self.database.is_sqlite
        with self.database.session() as session:
            job = job_store.claim_next(session, worker_id, skip_locked=skip_locked)
        if job is not None:
            JobRunner(self.settings, self.database, self.blobs, worker_id).run(job, self._stop.is_set)
            return True
        if self.batch_server is None:
            return False
        with self.database.session() as session:
            batch = batch_store.claim_next(session, worker_id, skip_locked=skip_locked)
        if batch is None:
            return False
        BatchRunner(self.settings, self.database, self.blobs, self.batch_server, worker_id).run(
            batch, self._stop.is_set
        )
        return True


def recover_stalled(settings: Settings, database: Database) -> list[str]:
    """Requeue running jobs whose heartbeat went stale (their worker died); fail those out of attempts."""
    recovered = []
    with database.session() as session:
        for row in job_store.stale_running(session, older_than_s=settings.stale_after_s):
            if row.attempts >= settings.max_attempts:
                message = f"The worker running this job stopped responding {row.attempts} times; giving up"
                error = {"code": "worker_lost", "message": message, "param": None}
                job_store.fail(session, row.id, error, event=message)
                continue
            if job_store.requeue(session, row, expected_heartbeat=row.heartbeat_at, refund_attempt=False):
                event_store.add_event(
                    session,
                    row.id,
                    f"The worker running this job ({row.worker_id}) stopped responding; requeued to resume "
                    "from its last checkpoint",
                    level="warning",
                )
                recovered.append(row.id)
    return recovered


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

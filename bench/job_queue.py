"""Queue throughput and latency: jobs claimed per second, and create→running latency, with 1, 2 and 4
worker processes on SQLite and on PostgreSQL, using trivial jobs (claim, then mark succeeded).

    python bench/job_queue.py [--jobs 400] [--json bench/results/queue.json]

Workers poll at the real workers' interval (tuneforge.worker.pool.POLL_S) when the queue is empty, so
the latency column includes that polling delay, as users see it."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

from tuneforge.settings import Settings
from tuneforge.store import jobs as job_store
from tuneforge.store.db import Database, open_database
from tuneforge.store.tables import JobRow
from tuneforge.worker.pool import POLL_S

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def add_jobs(database: Database, count: int) -> None:
    with database.session() as session:
        for _ in range(count):
            job_store.add_job(
                session, id=f"ftjob-{uuid.uuid4().hex}", api="fine_tuning.jobs", owner="bench", model="tiny",
                training_file="file-x", validation_file=None, hyperparameters={}, suffix=None, seed=0,
                integrations=[], status="queued",
            )  # fmt: skip


def worker(url: str, stop_after_idle_s: float, counter: Any) -> None:
    database = Database(url)
    worker_id = uuid.uuid4().hex
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < stop_after_idle_s:
        with database.session() as session:
            job = job_store.claim_next(session, worker_id, skip_locked=not database.is_sqlite)
            if job is not None:
                job_store.transition(session, job.id, from_statuses=("running",), status="succeeded")
        if job is None:
            time.sleep(POLL_S)
            continue
        idle_since = time.monotonic()
        with counter.get_lock():
            counter.value += 1
    database.close()


def run_workers(url: str, n_workers: int, idle_s: float) -> tuple[list[mp.Process], Any]:
    counter = mp.Value("i", 0)
    procs = [mp.Process(target=worker, args=(url, idle_s, counter)) for _ in range(n_workers)]
    for proc in procs:
        proc.start()
    return procs, counter


def throughput(url: str, n_workers: int, n_jobs: int) -> float:
    database = Database(url)
    add_jobs(database, n_jobs)
    start = time.perf_counter()
    procs, counter = run_workers(url, n_workers, idle_s=1.0)
    while counter.value < n_jobs:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    database.close()
    return n_jobs / elapsed


def latency(url: str, n_workers: int, n_jobs: int = 40) -> list[float]:
    database = Database(url)
    procs, _ = run_workers(url, n_workers, idle_s=3.0)
    time.sleep(1.0)  # workers are up and polling
    for _ in range(n_jobs):
        add_jobs(database, 1)
        time.sleep(0.03)
    for proc in procs:
        proc.join()
    with database.session() as session:
        rows = session.execute(select(JobRow.seq, JobRow.heartbeat_at)).all()
    database.close()
    return [heartbeat - seq / 1e9 for seq, heartbeat in rows if heartbeat is not None]


def fresh(kind: str, tmp: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
        open_database(Settings(data_dir=tmp, database_url=url)).close()
        return url, None
    name = f"tuneforge_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    open_database(Settings(data_dir=tmp, database_url=url)).close()
    return url, (admin, name)


def drop(handle: Any) -> None:
    if handle is None:
        return
    admin, name = handle
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--json", type=Path, default=Path("bench/results/queue.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        for kind in ("sqlite", "postgres"):
            for n_workers in (1, 2, 4):
                url, handle = fresh(kind, Path(tmp_dir))
                rate = throughput(url, n_workers, args.jobs)
                drop(handle)
                url, handle = fresh(kind, Path(tmp_dir))
                lat = sorted(latency(url, n_workers))
                drop(handle)
                results.append({
                    "database": kind, "workers": n_workers, "claims_per_s": round(rate, 1),
                    "latency_p50_ms": round(statistics.median(lat) * 1000, 1),
                    "latency_p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 1),
                })  # fmt: skip
                print(results[-1], flush=True)
    print(f"\n{'database':<10}{'workers':>8}{'claims/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for row in results:
        print(
            f"{row['database']:<10}{row['workers']:>8}{row['claims_per_s']:>10}"
            f"{row['latency_p50_ms']:>9}{row['latency_p99_ms']:>9}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"poll_interval_s": POLL_S, "results": results}, indent=2))


if __name__ == "__main__":
    main()

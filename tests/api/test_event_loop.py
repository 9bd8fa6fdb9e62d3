"""No database call runs on the event loop: while another process holds SQLite's write lock, a request
that must write waits on its own thread, and the server keeps answering everything else. (An upload that
committed on the loop froze `/health`, SIGTERM and every other request for as long as the lock was held.)"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from tuneforge.settings import Settings

LOCK_HELD_S = 4.0


def hold_write_lock(database: Path) -> threading.Timer:
    """Another writer (a worker, a training child) holding the lock for a while, then letting go."""
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    release = threading.Timer(LOCK_HELD_S, lambda: (writer.rollback(), writer.close()))
    release.start()
    return release


def test_an_upload_waiting_for_the_write_lock_does_not_hold_up_other_requests(
    http: TestClient, settings: Settings, train_file: Path
) -> None:
    http.get("/health")  # the database exists and is migrated before the lock is taken
    release = hold_write_lock(settings.data_dir / "tuneforge.db")
    answers: dict[str, int] = {}

    def upload() -> None:
        files = {"file": ("train.jsonl", train_file.read_bytes())}
        answers["upload"] = http.post("/v1/files", files=files, data={"purpose": "fine-tune"}).status_code

    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(1.0)  # the upload is validated by now and waits to commit
    started = time.monotonic()
    health = http.get("/health")
    listed = http.get("/v1/files")
    answered_s = time.monotonic() - started
    release.join()
    uploader.join(30)

    assert health.status_code == 200 and listed.status_code == 200
    assert answered_s < 2.0, f"other requests waited {answered_s:.1f} s for the upload's commit"
    assert answers["upload"] == 200  # and the upload itself succeeded once the lock was free
    assert len(http.get("/v1/files").json()["data"]) == 1

"""A route's writes are committed before its response is sent: a client told of a new job must find it
on its very next request, on any connection. (Committed after the response, 13 of 36,000 requests under
load cancelled a job they had just created and got 404.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import post_scope
from tuneforge.settings import Settings


def post_json(app: FastAPI, path: str, body: dict[str, Any], on_response: Any) -> int:
    """POST through the ASGI interface, calling `on_response()` the moment the status line is sent (a
    test client returns only once the whole app call, commit included, has finished)."""
    raw = json.dumps(body).encode()
    scope = post_scope(
        path, [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    )
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            on_response()

    asyncio.run(app(scope, receive, send))
    return status[0]


def test_a_created_job_is_committed_before_the_client_hears_of_it(
    app: FastAPI, http: TestClient, settings: Settings, train_file: Path
) -> None:
    files = {"file": ("train.jsonl", train_file.read_bytes())}
    file_id = http.post("/v1/files", files=files, data={"purpose": "fine-tune"}).json()["id"]
    seen: list[int] = []

    def count_committed_jobs() -> None:  # what any other connection sees at that moment
        with sqlite3.connect(settings.data_dir / "tuneforge.db") as other:
            seen.append(other.execute("SELECT count(*) FROM jobs").fetchone()[0])

    status = post_json(
        app, "/v1/fine_tuning/jobs", {"model": "tiny", "training_file": file_id}, count_committed_jobs
    )
    assert status == 200
    assert seen == [1]

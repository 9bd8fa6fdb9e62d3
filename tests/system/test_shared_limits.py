"""Two real API replicas on one PostgreSQL database and one Redis: requests per minute per key and live
jobs per organisation are limits of the deployment, not of each process. Concurrent requests split
between the two are granted exactly up to the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import _fresh_postgres_database
from tests.system.replicas import Shared, host_dir, start_api

RPM = 25
LIVE_JOBS = 3


@pytest.fixture
def replicas(tmp_path: Path, shared_models_dir: Path) -> Iterator[tuple[Shared, list[str]]]:
    shared = Shared(next(database := _fresh_postgres_database()))
    limits = {"TUNEFORGE_REQUESTS_PER_MINUTE": str(RPM), "TUNEFORGE_MAX_LIVE_JOBS_PER_ORG": str(LIVE_JOBS)}
    servers = []
    try:
        for name in ("api-a", "api-b"):
            servers.append(start_api(shared, host_dir(tmp_path, name, shared_models_dir), **limits))
        yield shared, [s.base for s in servers]
    finally:
        for server in servers:
            server.stop()
        next(database, None)  # drops the database


def split_between(bases: list[str], key: str, n: int, send: object) -> list[int]:
    """`n` concurrent calls of `send(http)`, alternating between the replicas; their status codes."""
    clients = [
        httpx.Client(base_url=b, headers={"Authorization": f"Bearer {key}"}, timeout=60) for b in bases
    ]
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            calls = [pool.submit(send, clients[i % len(clients)]) for i in range(n)]  # type: ignore[operator]
            return [call.result().status_code for call in calls]
    finally:
        for client in clients:
            client.close()


@pytest.mark.system
@pytest.mark.postgres
def test_two_replicas_grant_requests_and_live_jobs_exactly_up_to_the_limits(
    replicas: tuple[Shared, list[str]], tmp_path: Path
) -> None:
    shared, bases = replicas

    statuses = split_between(bases, shared.new_key("rpm-org"), 3 * RPM, lambda h: h.get("/v1/models"))
    assert statuses.count(200) == RPM and statuses.count(429) == 2 * RPM, statuses

    key = shared.new_key("jobs-org")
    rows = [json.dumps({"prompt": f"q{i} ->", "completion": f" a{i % 2}"}) for i in range(12)]
    with httpx.Client(base_url=bases[0], headers={"Authorization": f"Bearer {key}"}) as http:
        upload = http.post(
            "/v1/files", files={"file": ("t.jsonl", "\n".join(rows))}, data={"purpose": "fine-tune"}
        )
    file_id = upload.json()["id"]
    body = {"model": "tiny", "training_file": file_id}
    created = split_between(bases, key, 16, lambda h: h.post("/v1/fine_tuning/jobs", json=body))
    assert created.count(200) == LIVE_JOBS and created.count(429) == 16 - LIVE_JOBS, created
    with httpx.Client(base_url=bases[1], headers={"Authorization": f"Bearer {key}"}) as http:
        listed = http.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]
    assert len(listed) == LIVE_JOBS and {j["status"] for j in listed} == {"queued"}

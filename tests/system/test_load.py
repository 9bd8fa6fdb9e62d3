"""A busy team against a real `tuneforge serve` on the SQLite default: 32 clients for a bounded time
(TUNEFORGE_LOAD_SECONDS, 30 by default; the issue's run is 300) doing uploads, file/job/event lists, job
creation (cancelled at once, to stay under the live-job limit), completions on `tiny` and `/health`.
Not one request may fail: no 5xx, no 4xx, no timeout. (The server used to freeze within seconds: an
upload committed on the event loop while a job creation held SQLite's write lock.)"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import LOAD_SECONDS
from tests.system.conftest import Server

CLIENTS = 32
TIMEOUT_S = 30.0  # a request slower than this counts as an error
LOAD_ENV = {"TUNEFORGE_REQUESTS_PER_MINUTE": "1000000", "TUNEFORGE_MAX_LIVE_JOBS_PER_ORG": "64"}
TRAIN = "".join(
    json.dumps({"prompt": f"review {i} ->", "completion": " good" if i % 2 else " bad"}) + "\n"
    for i in range(20)
).encode()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error is not None:
                self.errors.append(error)


class Team:
    """What each client does in turn; every call returns the response that decides success."""

    def __init__(self, http: httpx.Client, file_id: str, job_id: str) -> None:
        self.http, self.file_id, self.job_id = http, file_id, job_id

    def upload(self) -> httpx.Response:
        files = {"file": ("train.jsonl", TRAIN)}
        return self.http.post("/v1/files", files=files, data={"purpose": "fine-tune"})

    def list_files(self) -> httpx.Response:
        return self.http.get("/v1/files", params={"limit": 20})

    def list_jobs(self) -> httpx.Response:
        return self.http.get("/v1/fine_tuning/jobs", params={"limit": 20})

    def list_events(self) -> httpx.Response:
        return self.http.get(f"/v1/fine_tuning/jobs/{self.job_id}/events")

    def create_and_cancel_job(self) -> httpx.Response:
        body = {"model": "tiny", "training_file": self.file_id, "hyperparameters": {"n_epochs": 1}}
        created = self.http.post("/v1/fine_tuning/jobs", json=body)
        if created.status_code != 200:
            return created
        return self.http.post(f"/v1/fine_tuning/jobs/{created.json()['id']}/cancel")

    def complete(self) -> httpx.Response:
        return self.http.post("/v1/completions", json={"model": "tiny", "prompt": "hello", "max_tokens": 4})

    def health(self) -> httpx.Response:
        return self.http.get("/health")

    def steps(self) -> list[Callable[[], httpx.Response]]:
        return [
            self.upload,
            self.list_files,
            self.create_and_cancel_job,
            self.list_jobs,
            self.complete,
            self.list_events,
            self.health,
        ]


def client_loop(
    base: str, key: str, fixture: tuple[str, str], offset: int, stop: float, tally: Tally
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S) as http:
        steps = Team(http, *fixture).steps()
        turn = offset  # clients start at different steps, so every kind of request overlaps every other
        while time.monotonic() < stop:
            step = steps[turn % len(steps)]
            turn += 1
            started = time.monotonic()
            try:
                response = step()
                error = (
                    None
                    if response.is_success
                    else f"{step.__name__}: {response.status_code} {response.text[:200]}"
                )
            except httpx.HTTPError as exc:
                error = f"{step.__name__}: {type(exc).__name__} {exc}"
            tally.record(time.monotonic() - started, error)


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    # No embedded worker: jobs stay queued until cancelled, so the load is the API's and SQLite's alone.
    server = Server(data_dir, workers=0, env=LOAD_ENV, auth=True)
    yield server
    server.stop()


def prepare(server: Server, key: str) -> tuple[str, str]:
    """A file and a job to list events of, and a first completion (it loads the model in the inference
    process, which takes longer than any request under load may)."""
    team = Team(
        httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=120), "", ""
    )
    file_id = team.upload().json()["id"]
    team.file_id = file_id
    job = team.http.post("/v1/fine_tuning/jobs", json={"model": "tiny", "training_file": file_id}).json()
    team.http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").raise_for_status()
    team.complete().raise_for_status()
    return file_id, job["id"]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


@pytest.mark.system
def test_32_clients_of_mixed_load_on_sqlite_get_no_errors(server: Server) -> None:
    key = (server.data_dir / "api_key").read_text().strip()
    fixture = prepare(server, key)
    tally = Tally()
    stop = time.monotonic() + LOAD_SECONDS
    clients = [
        threading.Thread(target=client_loop, args=(server.base, key, fixture, i, stop, tally))
        for i in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(LOAD_SECONDS + TIMEOUT_S * 4)
    stuck = sum(client.is_alive() for client in clients)
    p50, p99 = percentile(tally.latencies, 50), percentile(tally.latencies, 99)
    print(
        f"\nload: {CLIENTS} clients x {LOAD_SECONDS:.0f} s: {len(tally.latencies)} requests, "
        f"{len(tally.errors)} errors, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    assert stuck == 0, f"{stuck} clients never finished their last request"
    assert tally.errors == [], tally.errors[:10]
    server.process.terminate()
    # SIGTERM is heard at once (a blocked loop ignored it for 10 minutes); uvicorn shuts down gracefully,
    # then re-raises the signal, so the exit status is -SIGTERM
    assert server.process.wait(20) in (0, -signal.SIGTERM)

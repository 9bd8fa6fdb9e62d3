"""A deployment in miniature for the scale-out tests and bench/scale_out.py: API replicas and workers as
real `tuneforge` processes, each with a data dir of its own (another host), sharing only PostgreSQL, the
S3 server's bucket and Redis."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.system.conftest import Server, tuneforge
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store
from tuneforge.store.db import open_database

REDIS_URL = "redis://127.0.0.1:6379/0"
START_S = 120.0


@dataclass
class Shared:
    """What every process of the deployment is told: the database, the bucket, Redis."""

    database_url: str
    redis_prefix: str = field(default_factory=lambda: f"tuneforge-test-{uuid.uuid4().hex[:12]}")
    s3_endpoint: str | None = None
    bucket: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "TUNEFORGE_DATABASE_URL": self.database_url,
            "TUNEFORGE_REDIS_URL": REDIS_URL,
            "TUNEFORGE_REDIS_KEY_PREFIX": self.redis_prefix,
            **extra,
        }
        if self.bucket is not None and self.s3_endpoint is not None:
            from tests.conftest import S3_CREDENTIALS

            env["TUNEFORGE_BLOB_URL"] = f"s3://{self.bucket}/tf"
            env["TUNEFORGE_S3_ENDPOINT_URL"] = self.s3_endpoint
            env.update({f"TUNEFORGE_{name.upper()}": value for name, value in S3_CREDENTIALS.items()})
        return env

    def new_key(self, org: str) -> str:
        database = open_database(Settings(database_url=self.database_url, data_dir=_scratch()))
        with database.session() as session:
            _, secret = key_store.create_key(session, org=org, name="scale-out test")
        database.close()
        return secret


def _scratch() -> Path:
    """open_database wants a data dir (keys and tracking stores live there); this one holds nothing."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="tuneforge-keys-"))


def host_dir(root: Path, name: str, base_models: Path) -> Path:
    """A fresh data dir for one process; the built-in base models are linked in, as they are built
    deterministically and identically on every host."""
    path = root / name
    path.mkdir()
    (path / "base-models").symlink_to(base_models, target_is_directory=True)
    return path


def start_api(shared: Shared, data_dir: Path, **env: str) -> Server:
    # Several processes start at once on a shared machine: a replica may take a while to answer first.
    return Server(data_dir, workers=0, env=shared.env(**env), auth=True, start_s=START_S)


def start_worker(shared: Shared, data_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    return start_worker_env(data_dir, shared.env(**env))


def start_worker_env(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return tuneforge("worker", "--data-dir", str(data_dir), env=env, stdout=subprocess.DEVNULL)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


# --- the scale-out scenario ------------------------------------------------------------------------------

CLIENTS = 32
TIMEOUT_S = 30.0  # a request slower than this counts as an error
SETUP_TIMEOUT_S = 600.0
TRAIN_ROWS = "".join(
    json.dumps({"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"}) + "\n" for i in range(12)
)
LIVE_STATUSES = ("validating_files", "queued", "running")


@dataclass
class Limits:
    requests_per_minute: int = 300  # per key: each client has its own, so only the probe meets it
    live_jobs: int = 3  # per organisation: every client's key is the same organisation's

    def env(self) -> dict[str, str]:
        return {
            "TUNEFORGE_REQUESTS_PER_MINUTE": str(self.requests_per_minute),
            "TUNEFORGE_MAX_LIVE_JOBS_PER_ORG": str(self.live_jobs),
        }


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)  # ids of the jobs the API created
    models: list[str] = field(default_factory=list)  # fine-tuned models seen succeeded, to call
    max_live: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.counts[kind] += 1
            if error is not None:
                self.errors.append(error)


@dataclass
class Result:
    seconds: float
    apis: int
    workers: int
    requests: int
    errors: list[str]
    counts: dict[str, int]
    jobs_accepted: int
    jobs_succeeded: int
    jobs_started_twice: list[str]
    max_live_jobs: int
    probe_granted: int
    p50_ms: float
    p99_ms: float
    objects_missing: list[str]

    def row(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in ("errors", "jobs_started_twice")}


class Client:
    """One of the 32: it alternates between the replicas and, in turn, creates a job (refused with 429
    while the organisation is at its live-job limit: counted, not an error), completes on the base model,
    completes on a fine-tuned model once one exists, and reads a job back."""

    def __init__(
        self, bases: list[str], key: str, file_id: str, tally: Tally, offset: int, pace_s: float = 0.0
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        self.http = [httpx.Client(base_url=b, headers=headers, timeout=TIMEOUT_S) for b in bases]
        self.file_id, self.tally, self.turn = file_id, tally, offset
        self.pace_s = pace_s  # the least time between two requests: a client that keeps to its key's limit

    def run(self, stop: float) -> None:
        steps = [self.create_job, self.complete_base, self.complete_fine_tuned, self.read_job]
        while time.monotonic() < stop:
            http = self.http[self.turn % len(self.http)]
            step = steps[self.turn % len(steps)]
            self.turn += 1
            started = time.monotonic()
            try:
                kind, error = step(http)
            except httpx.HTTPError as exc:
                kind, error = step.__name__, f"{step.__name__}: {type(exc).__name__} {exc}"
            self.tally.record(kind, time.monotonic() - started, error)
            time.sleep(max(0.0, started + self.pace_s - time.monotonic()))
        for http in self.http:
            http.close()

    def create_job(self, http: httpx.Client) -> tuple[str, str | None]:
        body = {"model": "tiny", "training_file": self.file_id, "hyperparameters": {"n_epochs": 1}}
        response = http.post("/v1/fine_tuning/jobs", json=body)
        if response.status_code == 429 and "queued or running" in response.json()["error"]["message"]:
            return "job_refused_at_limit", None
        if response.is_success:
            with self.tally.lock:
                self.tally.accepted.append(response.json()["id"])
        return "job_created", _error("create_job", response)

    def complete_base(self, http: httpx.Client) -> tuple[str, str | None]:
        response = http.post(
            "/v1/completions", json={"model": "tiny", "prompt": "item 1 ->", "max_tokens": 2}
        )
        return "completion_base", _error("complete_base", response)

    def complete_fine_tuned(self, http: httpx.Client) -> tuple[str, str | None]:
        with self.tally.lock:
            model = self.tally.models[self.turn % len(self.tally.models)] if self.tally.models else "tiny"
        body = {"model": model, "prompt": "item 3 ->", "max_tokens": 2}
        kind = "completion_fine_tuned" if model != "tiny" else "completion_base"
        return kind, _error("complete_fine_tuned", http.post("/v1/completions", json=body))

    def read_job(self, http: httpx.Client) -> tuple[str, str | None]:
        with self.tally.lock:
            job_id = (
                self.tally.accepted[self.turn % len(self.tally.accepted)] if self.tally.accepted else None
            )
        if job_id is None:
            return "read_jobs", _error("read_job", http.get("/v1/fine_tuning/jobs", params={"limit": 5}))
        return "read_job", _error("read_job", http.get(f"/v1/fine_tuning/jobs/{job_id}"))


def _error(step: str, response: httpx.Response) -> str | None:
    return None if response.is_success else f"{step}: {response.status_code} {response.text[:200]}"


def watch(database_url: str, owner: str, tally: Tally, stop: threading.Event) -> None:
    """Sample the organisation's live jobs from the database (the limit must hold at every instant) and
    collect the fine-tuned models that succeeded, for the clients to call."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    query = text("SELECT status, fine_tuned_model FROM jobs WHERE owner = :owner")
    while not stop.wait(0.2):
        with engine.connect() as connection:
            rows = connection.execute(query, {"owner": owner}).all()
        with tally.lock:
            tally.max_live = max(tally.max_live, sum(status in LIVE_STATUSES for status, _ in rows))
            tally.models[:] = sorted({m for status, m in rows if status == "succeeded" and m})
    engine.dispose()


def probe_rate_limit(bases: list[str], key: str, limits: Limits) -> int:
    """Requests of one key, more than a minute's worth and split between the replicas: how many were
    granted (the limit holds globally when that is exactly the limit)."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [
        httpx.Client(base_url=b, headers={"Authorization": f"Bearer {key}"}, timeout=60) for b in bases
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda i: clients[i % len(clients)].get("/v1/models").status_code,
                     range(limits.requests_per_minute + 50))
        )  # fmt: skip
    for client in clients:
        client.close()
    return statuses.count(200)


def run_scale_out(
    shared: Shared, root: Path, base_models: Path, *, seconds: float, apis: int = 2, workers: int = 2,
    limits: Limits | None = None, drain_s: float = 300.0,
) -> Result:  # fmt: skip
    """The deployment (`apis` replicas, `workers` workers, the second launching two-process training),
    `CLIENTS` clients for `seconds`, then every accepted job waited for and checked."""
    limits = limits or Limits()
    servers: list[Server] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(apis):
            servers.append(start_api(shared, host_dir(root, f"api-{i}", base_models), **limits.env()))
        for i in range(workers):
            extra = {"TUNEFORGE_TRAIN_PROCESSES": "2"} if i == 1 else {}  # this worker trains under torchrun
            procs.append(start_worker(shared, host_dir(root, f"worker-{i}", base_models), **extra))
        return _drive(shared, [s.base for s in servers], seconds, apis, workers, limits, drain_s)
    finally:
        for proc in procs:
            stop_worker(proc)
        for server in servers:
            server.stop()


def _drive(
    shared: Shared, bases: list[str], seconds: float, apis: int, workers: int, limits: Limits, drain_s: float
) -> Result:
    keys = [shared.new_key("acme") for _ in range(CLIENTS)]
    file_id, first_job = _warm_up(bases, keys[0], drain_s)
    probe_granted = probe_rate_limit(bases, shared.new_key("acme"), limits)
    tally, stop_watching = Tally(), threading.Event()
    tally.accepted.append(first_job)  # checked like the others: done once, its model in the bucket
    watcher = threading.Thread(target=watch, args=(shared.database_url, "acme", tally, stop_watching))
    watcher.start()
    pace_s = 60 / (0.9 * limits.requests_per_minute)  # each client keeps under its key's limit
    clients = [Client(bases, keys[i], file_id, tally, i, pace_s) for i in range(CLIENTS)]  # before the clock
    started = time.monotonic()
    stop = started + seconds
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + TIMEOUT_S * 4)
    elapsed = time.monotonic() - started
    outcomes = _wait_for_jobs(bases[-1], keys[0], tally.accepted, drain_s)
    stop_watching.set()
    watcher.join()
    return Result(
        seconds=round(elapsed, 1),
        apis=apis,
        workers=workers,
        requests=len(tally.latencies),
        errors=tally.errors + [f"client {i} never finished" for i, t in enumerate(threads) if t.is_alive()],
        counts=dict(tally.counts),
        jobs_accepted=len(tally.accepted),
        jobs_succeeded=sum(o["status"] == "succeeded" for o in outcomes.values()),
        jobs_started_twice=[j for j, o in outcomes.items() if o["starts"] != 1],
        max_live_jobs=tally.max_live,
        probe_granted=probe_granted,
        p50_ms=round(_percentile(tally.latencies, 50) * 1000),
        p99_ms=round(_percentile(tally.latencies, 99) * 1000),
        objects_missing=_missing_objects(shared, outcomes),
    )


def _warm_up(bases: list[str], key: str, wait_s: float) -> tuple[str, str]:
    """Before the clock starts: the training file, a first fine-tuned model (so clients call one from
    the first second), and each replica's inference process loaded with the base and that model."""
    # Setting up is not under test: a first load (torch, then the model) may be slow on a busy machine.
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=SETUP_TIMEOUT_S) as http:
        files = {"file": ("t.jsonl", TRAIN_ROWS)}
        upload = http.post(f"{bases[0]}/v1/files", files=files, data={"purpose": "fine-tune"})
        file_id = upload.raise_for_status().json()["id"]
        body = {"model": "tiny", "training_file": file_id, "hyperparameters": {"n_epochs": 1}}
        job_id = http.post(f"{bases[0]}/v1/fine_tuning/jobs", json=body).raise_for_status().json()["id"]
        for base in bases:
            first = {"model": "tiny", "prompt": "warm up", "max_tokens": 1}
            http.post(f"{base}/v1/completions", json=first).raise_for_status()
        deadline = time.monotonic() + wait_s
        while (job := http.get(f"{bases[0]}/v1/fine_tuning/jobs/{job_id}").json())["status"] != "succeeded":
            if job["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"the warm-up job did not succeed: {job}")
            time.sleep(0.5)
        for base in bases:
            first = {"model": job["fine_tuned_model"], "prompt": "warm up", "max_tokens": 1}
            http.post(f"{base}/v1/completions", json=first).raise_for_status()
    return file_id, job_id


def _wait_for_jobs(base: str, key: str, job_ids: list[str], drain_s: float) -> dict[str, dict[str, Any]]:
    """Each accepted job's final status and how many times it was started."""
    deadline = time.monotonic() + drain_s
    outcomes: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for job_id in job_ids:
            while (job := http.get(f"/v1/fine_tuning/jobs/{job_id}").json())["status"] in LIVE_STATUSES:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            events = http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
            starts = sum(e["message"].startswith("Fine-tuning job started") for e in events)
            resumed = sum(e["message"].startswith("Fine-tuning job resumed") for e in events)
            outcomes[job_id] = {
                "status": job["status"],
                "starts": starts + resumed,
                "model": job["fine_tuned_model"],
            }
    return outcomes


def _missing_objects(shared: Shared, outcomes: dict[str, dict[str, Any]]) -> list[str]:
    """Each succeeded job's weights and manifest, looked for in the bucket."""
    if shared.bucket is None or shared.s3_endpoint is None:
        return []
    from tests.conftest import s3_objects

    objects = s3_objects(shared.s3_endpoint, shared.bucket)
    wanted = [
        f"tf/jobs/{job_id}/output/{name}"
        for job_id, outcome in outcomes.items()
        if outcome["status"] == "succeeded"
        for name in ("model.safetensors", "tuneforge.json")
    ]
    return [key for key in wanted if key not in objects]


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

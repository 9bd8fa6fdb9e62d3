"""A PostgreSQL outage in the middle of a job: the worker's connection runs through a proxy that the test
cuts for longer than the stale-heartbeat limit. The job must still finish, and never with two trainers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import _fresh_postgres_database, trainer_processes
from tests.system.conftest import FAST_RECOVERY, Server, tuneforge

POSTGRES_PORT = 5432


class OutageProxy:
    """A TCP relay to PostgreSQL that can be cut: while cut it drops every connection, live or new."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.down = False
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.down = True
            for sock in self._live:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._live.clear()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._live |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _fresh_postgres_database()


@pytest.mark.system
@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_outage_mid_job_ends_in_success_with_one_trainer_at_a_time(
    data_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    proxy = OutageProxy(POSTGRES_PORT)
    through_proxy = postgres_url.replace(f":{POSTGRES_PORT}/", f":{proxy.port}/")
    server = Server(data_dir, workers=0, env={"TUNEFORGE_DATABASE_URL": postgres_url})
    worker_env = {**FAST_RECOVERY, "TUNEFORGE_DATABASE_URL": through_proxy, "TUNEFORGE_RETRY_BACKOFF_S": "1"}
    worker = tuneforge(
        "worker", "--concurrency", "2", "--data-dir", str(data_dir), env=worker_env, stderr=subprocess.DEVNULL
    )
    most_trainers, watching = 0, True
    try:
        client = OpenAI(base_url=f"{server.base}/v1", api_key="local", max_retries=0)
        data = tmp_path / "train.jsonl"
        rows = [{"prompt": f"item {i} ->", "completion": f" {'yes' if i % 3 else 'no'}"} for i in range(200)]
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, hyperparameters={"n_epochs": 4}
        )

        def watch() -> None:
            nonlocal most_trainers
            while watching:
                most_trainers = max(most_trainers, len(trainer_processes(job.id)))
                time.sleep(0.1)

        threading.Thread(target=watch, daemon=True).start()
        deadline = time.monotonic() + 120
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data):
            assert time.monotonic() < deadline, "training never reported metrics"
            time.sleep(0.3)

        proxy.cut()  # longer than TUNEFORGE_STALE_AFTER_S: another runner may take the job over
        time.sleep(8)
        proxy.restore()

        deadline = time.monotonic() + 240
        while (status := client.fine_tuning.jobs.retrieve(job.id).status) not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert status == "succeeded", events
        assert most_trainers == 1
    finally:
        watching = False
        worker.terminate()
        worker.wait(30)
        server.stop()
        proxy.close()

"""System tests drive the real `tuneforge` command in subprocesses, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tuneforge(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuneforge", *args],
        env={**os.environ, **(env or {})},
        **popen,  # type: ignore[call-overload]
    )


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError("server did not become healthy")


class Server:
    def __init__(
        self, data_dir: Path, *, workers: int, env: dict[str, str], auth: bool = False, start_s: float = 30
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--port", str(self.port), "--data-dir", str(data_dir), "--workers", str(workers)]
        self.process = tuneforge(*args, *([] if auth else ["--no-auth"]), env=env)
        try:
            wait_until_healthy(self.base, self.process, timeout=start_s)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


FAST_RECOVERY = {
    "TUNEFORGE_HEARTBEAT_INTERVAL_S": "0.5",
    "TUNEFORGE_STALE_AFTER_S": "3",
    "TUNEFORGE_CHECKPOINT_EVERY_STEPS": "5",
}


@pytest.fixture
def data_dir(tmp_path: Path, shared_models_dir: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    (path / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    return path


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    server = Server(data_dir, workers=0, env=FAST_RECOVERY)
    yield server
    server.stop()

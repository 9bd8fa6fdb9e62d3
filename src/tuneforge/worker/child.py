"""The training child process of a job: `python -m tuneforge.worker.train_child TASK.json` (the same recipe
`tuneforge train` runs), whose typed events arrive on a queue. It dies with its worker
(PR_SET_PDEATHSIG), so a killed worker never leaves an orphan writing into a directory that the next
attempt resumes from; the recipe's directory lock covers the rest (a worker that lost its database)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from tuneforge.settings import Settings, child_environment
from tuneforge.training.events import Event, parse_line

_PR_SET_PDEATHSIG = 1
_TERMINATE_GRACE_S = 10.0


def resource_environment(settings: Settings) -> dict[str, str]:
    """Per-job limits: CPU threads, and which GPUs a child may see."""
    env = {}
    if settings.train_threads:
        env["OMP_NUM_THREADS"] = str(settings.train_threads)
    if settings.train_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = settings.train_visible_devices
    return env


def _die_with_parent() -> None:
    # Off Linux there is no prctl; the stale-heartbeat recovery still requeues the job.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Child:
    """A running training child whose JSON events arrive on a queue."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=child_environment(env),
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a Ctrl-C at the server's terminal is the server's to handle
        )
        self.events: queue.Queue[Event | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.events.put(parse_line(line))
        self.events.put(None)  # end of stream

    def next_events(self, timeout: float) -> Iterator[Event | None]:
        """Events that arrive within `timeout` seconds (None marks the end of the stream)."""
        try:
            yield self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            try:
                yield self.events.get_nowait()
            except queue.Empty:
                return

    def stop(self, exit_grace_s: float = 0.0) -> None:
        """Let the child exit by itself for `exit_grace_s`, then SIGTERM (the recipe stops at the next
        step boundary; torchrun passes it on to its ranks), then SIGKILL after a grace period. Signals go
        to the child's whole process group, so nothing it started outlives it (torchrun's ranks, in
        sessions of their own, die with torchrun: training/child.py)."""
        if exit_grace_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(exit_grace_s)
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)  # start_new_session: the group's id is the child's pid

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

"""The training child: the command line that runs the recipe for a job, and the process that runs it.

The child is `python -m tuneforge train … --events jsonl`: the same recipe users run by hand, printing one
JSON event per line. It dies with its worker (PR_SET_PDEATHSIG), so a killed worker never leaves an
orphan writing into a directory that the next attempt resumes from."""

from __future__ import annotations

import contextlib
import ctypes
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.settings import Settings, child_environment

_PR_SET_PDEATHSIG = 1
_TERMINATE_GRACE_S = 10.0


@dataclass(frozen=True)
class ChildSpec:
    model: str  # a base-model name or the directory of a fine-tuned model (continued training)
    training_file: Path
    validation_file: Path | None
    output_dir: Path
    hyperparameters: dict[str, Any]
    seed: int
    suffix: str | None


def command(spec: ChildSpec, settings: Settings) -> list[str]:
    argv = [sys.executable, "-m", "tuneforge", "train", "--model", spec.model, "-t", str(spec.training_file)]
    if spec.validation_file:
        argv += ["-v", str(spec.validation_file)]
    argv += ["-o", str(spec.output_dir), "--events", "jsonl", "--resume", "--seed", str(spec.seed)]
    argv += ["--data-dir", str(settings.data_dir), "--checkpoint-every", str(settings.checkpoint_every_steps)]
    if settings.train_threads:
        argv += ["--threads", str(settings.train_threads)]
    if spec.suffix:
        argv += ["--suffix", spec.suffix]
    return argv + _hyperparameter_flags(spec.hyperparameters)


def _hyperparameter_flags(params: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key in ("n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight"):
        value = params.get(key)
        if value is not None and value != "auto":
            flags += [f"--{key}", str(value)]
    if params.get("compute_classification_metrics"):
        flags.append("--compute_classification_metrics")
        if params.get("classification_n_classes") is not None:
            flags += ["--classification_n_classes", str(params["classification_n_classes"])]
        if params.get("classification_positive_class") is not None:
            flags += ["--classification_positive_class", str(params["classification_positive_class"])]
        if params.get("classification_betas"):
            flags += ["--classification_betas", *[str(beta) for beta in params["classification_betas"]]]
    return flags


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
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.events.put(_parse(line))
        self.events.put(None)  # end of stream

    def next_events(self, timeout: float) -> Iterator[dict[str, Any] | None]:
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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        self._log.close()

    def wait(self) -> int:
        code = self.process.wait()
        self._log.close()
        return code

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _parse(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {"type": "message", "level": "info", "message": line}
    return event if isinstance(event, dict) else {"type": "message", "level": "info", "message": line}

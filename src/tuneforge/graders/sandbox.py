"""Runs a python grader's `grade(sample, item)` in a separate, fenced process (`_sandbox_child.py`):
limits on CPU time, address space, processes and file size; its own network namespace (an audit hook
where the kernel refuses one); an unprivileged user when started as root; a fresh empty working
directory; the data directory denied. Every failure comes back as an `Outcome`, never as an exception.

The process runs in its own session and the whole group is killed when it answers or runs out of
wall-clock time, so the processes it forked die with it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

CHILD = Path(__file__).with_name("_sandbox_child.py")
NOBODY = 65534  # the uid the child drops to when started as root: it must be able to enter its cwd
_ENV = {
    "PATH": os.defpath,
    "LANG": "C.UTF-8",
    # One thread per numeric library: a pool of BLAS threads would reserve address space (RLIMIT_AS)
    # and count against RLIMIT_NPROC before the grader does anything.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0  # the whole run, interpreter start included
    cpu_s: int = 5  # CPU seconds of the grader's process
    memory_bytes: int = 1 << 30  # RLIMIT_AS: enough for python and numpy, not for a runaway list
    processes: int = 32  # RLIMIT_NPROC: a fork bomb stops here
    file_bytes: int = 1 << 20  # RLIMIT_FSIZE: what it may write into its scratch directory
    result_bytes: int = 1 << 16  # the answer is one short JSON line


ErrorKind = Literal["runtime", "not_a_number", "timeout", "crashed"]


@dataclass(frozen=True)
class Outcome:
    score: float | None
    error: ErrorKind | None = None
    details: str | None = None
    network: str | None = None  # how the child cut itself off the network


def run_python(
    source: str,
    sample: Mapping[str, Any],
    item: Mapping[str, Any],
    *,
    limits: SandboxLimits,
    deny_paths: Sequence[Path],
) -> Outcome:
    job = {
        "source": source,
        "sample": sample,
        "item": item,
        "limits": asdict(limits),
        "deny_paths": [str(path) for path in deny_paths],
    }
    with tempfile.TemporaryDirectory(prefix="tuneforge-grader-") as scratch:
        if os.getuid() == 0:
            os.chown(scratch, NOBODY, NOBODY)
        return _execute(json.dumps(job).encode(), scratch, limits)


def _execute(job: bytes, cwd: str, limits: SandboxLimits) -> Outcome:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=_ENV,
        start_new_session=True,  # its own process group, killed whole below
        close_fds=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        _send(proc.stdin, job)
        proc.wait(timeout=max(0.0, limits.wall_s - (time.monotonic() - started)))
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc)
    answer = _read_ready(proc.stdout, limits.result_bytes)
    proc.stdout.close()
    if timed_out:
        return Outcome(None, "timeout", f"grade() did not finish within {limits.wall_s:g} s")
    return _interpret(answer, proc.returncode, limits)


def _send(pipe: Any, job: bytes) -> None:
    try:
        pipe.write(job)
        pipe.close()
    except BrokenPipeError:
        pass  # the child died before reading; its exit status says why


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_ready(pipe: Any, limit: int) -> bytes:
    """What the child wrote before it exited, without waiting: a grandchild that left the group may
    still hold the pipe open, and must not keep the caller waiting for end-of-file."""
    os.set_blocking(pipe.fileno(), False)
    try:
        return os.read(pipe.fileno(), limit) or b""
    except BlockingIOError:
        return b""


def _interpret(answer: bytes, returncode: int, limits: SandboxLimits) -> Outcome:
    try:
        result = json.loads(answer.splitlines()[0])
    except (IndexError, ValueError):
        if returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU's soft, then hard, signal
            return Outcome(None, "timeout", f"grade() used up its {limits.cpu_s} s of CPU time")
        return Outcome(None, "crashed", _death(returncode))
    if "score" in result:
        return Outcome(float(result["score"]), network=result.get("network"))
    return Outcome(None, result["error"], result.get("details"), result.get("network"))


def _death(returncode: int) -> str:
    if returncode < 0:
        return f"the grader died of signal {signal.Signals(-returncode).name}"
    return f"the grader's process exited with status {returncode} without a score"

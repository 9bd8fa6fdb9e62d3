"""Runs a python grader's `grade(sample, item)` in a separate, fenced process (`_sandbox_child.py`):
limits on CPU time, address space, processes and file size; its own network namespace (an audit hook
where the kernel refuses one); an unprivileged user when started as root and it can; a fresh empty
working directory; file opens limited to what the interpreter needs, and never the data directory.
Every failure comes back as an `Outcome`, never as an exception.

The process runs in its own session and the whole group is killed when it answers or runs out of
wall-clock time, so the processes it forked die with it."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
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
    return run_python_batch(source, [(sample, item)], limits=limits, deny_paths=deny_paths)[0]


def run_python_batch(
    source: str,
    cases: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    limits: SandboxLimits,
    deny_paths: Sequence[Path],
) -> list[Outcome]:
    """One outcome per (sample, item). The cases share one process (an interpreter start is most of a
    small grader's cost); the limits hold per case, and when a case times out or kills the process, the
    cases after it run in a fresh one."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="tuneforge-grader-") as scratch:
        if os.getuid() == 0:
            os.chown(scratch, NOBODY, NOBODY)
        while len(outcomes) < len(cases):
            rest = cases[len(outcomes) :]
            job = {
                "source": source,
                "cases": [{"sample": sample, "item": item} for sample, item in rest],
                "limits": asdict(limits) | {"cases": len(rest)},
                "deny_paths": [str(path.resolve()) for path in deny_paths],  # the child's cwd differs
            }
            outcomes += _execute(json.dumps(job).encode(), scratch, limits, len(rest))
    return outcomes


def _execute(job: bytes, cwd: str, limits: SandboxLimits, cases: int) -> list[Outcome]:
    """The outcomes of the cases the process answered, then, if it stopped short, the failure of the
    case it was on: never an empty list, so the caller always gets further."""
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
        answers, timed_out = _collect(proc.stdout.fileno(), cases, limits)
    finally:
        _kill_group(proc)
        proc.stdout.close()
    outcomes = [_outcome(answer) for answer in answers]
    if len(outcomes) == cases:
        return outcomes
    if timed_out:
        return [*outcomes, Outcome(None, "timeout", f"grade() did not finish within {limits.wall_s:g} s")]
    return [*outcomes, _death(proc.returncode, limits)]


def _send(pipe: Any, job: bytes) -> None:
    try:
        pipe.write(job)
        pipe.close()
    except BrokenPipeError:
        pass  # the child died before reading; its exit status says why


def _collect(fd: int, cases: int, limits: SandboxLimits) -> tuple[list[dict[str, Any]], bool]:
    """Up to `cases` JSON lines, each due within `wall_s` of the one before; (answers, timed out).
    Stops at end-of-file, at a line that is not an answer, or once all cases are in: a grandchild that
    left the group may hold the pipe open, and must not keep the caller waiting for end-of-file."""
    answers: list[dict[str, Any]] = []
    buffer = b""
    while len(answers) < cases:
        ready, _, _ = select.select([fd], [], [], limits.wall_s)
        if not ready:
            return answers, True
        chunk = os.read(fd, limits.result_bytes)
        if not chunk:
            return answers, False
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            answer = _parse(line)
            if answer is None:
                return answers, False
            answers.append(answer)
    return answers[:cases], False


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and ("score" in answer or "error" in answer) else None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _outcome(answer: dict[str, Any]) -> Outcome:
    network = answer.get("network")
    if "score" in answer:
        return Outcome(float(answer["score"]), network=network)
    return Outcome(None, answer["error"], answer.get("details"), network)


def _death(returncode: int, limits: SandboxLimits) -> Outcome:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # RLIMIT_CPU's soft, then hard, signal
        return Outcome(None, "timeout", f"grade() used up its {limits.cpu_s} s of CPU time")
    if returncode < 0:
        return Outcome(None, "crashed", f"the grader died of signal {signal.Signals(-returncode).name}")
    return Outcome(None, "crashed", f"the grader's process exited with status {returncode} without a score")

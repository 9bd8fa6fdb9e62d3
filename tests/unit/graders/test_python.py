"""The python grader in its sandbox: ordinary graders score, and hostile ones (a loop, 10 GB, a fork
bomb, a socket, a read of the database) score 0 with a warning and harm nothing here."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from tuneforge.errors import InvalidGrader
from tuneforge.graders import GradeResult, Grading, Sample, SandboxLimits, grade, grade_many, validate
from tuneforge.graders.models import PythonGrader
from tuneforge.graders.sandbox import CHILD

LIMITS = SandboxLimits(wall_s=30.0, cpu_s=2)  # generous wall time: two cores are shared by many here


def _run(source: str, grading: Grading | None = None, item: dict[str, object] | None = None) -> GradeResult:
    grader = PythonGrader(type="python", name="py", source=source)
    validate(grader)
    return grade(
        grader, Sample.from_text("42"), item or {"answer": "42"}, grading=grading or Grading(sandbox=LIMITS)
    )


def test_a_grader_sees_sample_and_item_and_its_number_is_the_score() -> None:
    source = (
        "def grade(sample, item):\n"
        "    text, parsed = sample['output_text'] == item['answer'], sample['output_json'] == 42\n"
        "    return 0.25 + text * 0.5 + parsed * 0.25\n"
    )
    result = _run(source)
    assert result.score == 1.0
    assert result.warnings == []


@pytest.mark.parametrize(
    ("source", "flag", "said"),
    [
        ("def grade(s, i):\n    raise ValueError('bad item')", "python_grader_runtime_error", "bad item"),
        ("def grade(s, i):\n    return 'high'", "python_grader_runtime_error", "not a finite number"),
        ("def grade(s, i):\n    return float('nan')", "python_grader_runtime_error", "not a finite number"),
        ("import sys\ndef grade(s, i):\n    sys.exit(3)", "python_grader_runtime_error", "SystemExit"),
        ("import os\ndef grade(s, i):\n    os._exit(0)", "python_grader_runtime_error", "without a score"),
    ],
)
def test_failures_score_zero_with_a_warning(source: str, flag: str, said: str) -> None:
    result = _run(source)
    assert result.score == 0.0
    assert getattr(result.errors, flag)
    assert said in result.warnings[0]


def test_source_without_grade_or_that_does_not_compile_is_refused() -> None:
    for source, said in (
        ("def score(s, i):\n    return 1", "grade(sample, item)"),
        ("def grade(:", "line 1"),
    ):
        with pytest.raises(InvalidGrader, match=re.escape(said)) as refused:
            validate(PythonGrader(type="python", name="py", source=source))
        assert refused.value.param == "grader.source"


def test_a_grader_that_loops_forever_times_out_on_cpu_time() -> None:
    started = time.monotonic()
    result = _run(
        "def grade(s, i):\n    while True:\n        pass", Grading(sandbox=SandboxLimits(wall_s=20, cpu_s=1))
    )
    assert result.score == 0.0
    assert result.errors.unresponsive_reward_error
    assert "CPU time" in result.warnings[0]
    assert time.monotonic() - started < 20


def test_a_grader_that_sleeps_is_stopped_by_the_wall_clock() -> None:
    started = time.monotonic()
    result = _run(
        "import time\ndef grade(s, i):\n    time.sleep(60)", Grading(sandbox=SandboxLimits(wall_s=2))
    )
    assert result.score == 0.0
    assert result.errors.unresponsive_reward_error
    assert "within 2 s" in result.warnings[0]
    assert time.monotonic() - started < 10


def test_a_grader_that_allocates_10_gb_gets_a_memory_error() -> None:
    result = _run("def grade(s, i):\n    block = bytearray(10 * 2**30)\n    return 1.0")
    assert result.score == 0.0
    assert "MemoryError" in result.warnings[0]
    assert _run("def grade(s, i):\n    return 1.0").score == 1.0  # and the next grader runs as ever


def test_a_fork_bomb_is_bounded_and_leaves_no_process_behind() -> None:
    source = "import os\ndef grade(s, i):\n    while True:\n        os.fork()"
    result = _run(source, Grading(sandbox=SandboxLimits(wall_s=4, processes=16)))
    assert result.score == 0.0
    assert result.warnings
    deadline = time.monotonic() + 10
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.2)  # SIGKILLed processes vanish once reaped
    assert _sandbox_processes() == []


def test_a_grader_cannot_connect_to_this_machine() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        source = (
            "import socket\n"
            "def grade(s, i):\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\n"
            "    return 1.0\n"
        )
        result = _run(source)
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected
    assert result.score == 0.0
    assert result.errors.python_grader_runtime_error
    assert "socket" in result.warnings[0].lower() or "unreachable" in result.warnings[0].lower()


@pytest.mark.parametrize(
    "reader",
    [
        "open(DB).read()",
        "os.read(os.open(DB, os.O_RDONLY), 100)",
        "open(LINK).read()",  # a symlink outside the data directory that points into it
        "open(ELSEWHERE).read()",  # outside the data directory, but not the interpreter's either
        "os.listdir(os.path.dirname(DB))",
        "open(f'/proc/{os.getppid()}/environ').read() + open(f'/proc/{os.getppid()}/cwd/' + DB).read()",
    ],
)
def test_a_grader_cannot_read_the_data_directory(tmp_path: Path, reader: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "tuneforge.db"
    database.write_text("secret-api-keys")
    (tmp_path / "link").symlink_to(database)
    (tmp_path / "elsewhere.txt").write_text("secret too")
    source = (
        f"import os\nDB = {str(database)!r}\nLINK = {str(tmp_path / 'link')!r}\n"
        f"ELSEWHERE = {str(tmp_path / 'elsewhere.txt')!r}\n"
        f"def grade(s, i):\n    return 1.0 if 'secret' in str({reader}) else 0.5\n"
    )
    result = _run(source, Grading(sandbox=LIMITS, deny_paths=(data_dir,)))
    assert result.score == 0.0
    assert "does not allow reading" in result.warnings[0]
    assert "secret" not in " ".join(result.warnings)
    assert database.read_text() == "secret-api-keys"


def _sandbox_processes() -> list[int]:
    """Live processes running this checkout's sandbox script."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if str(CHILD).encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def test_grade_many_runs_a_batch_in_one_process_and_a_bad_case_costs_only_itself() -> None:
    source = (
        "import os, time\n"
        "def grade(sample, item):\n"
        "    if item['n'] == 1:\n"
        "        time.sleep(60)\n"
        "    if item['n'] == 3:\n"
        "        os._exit(0)\n"
        "    return item['n'] / 10\n"
    )
    grader = PythonGrader(type="python", name="py", source=source)
    cases = [(Sample.from_text("x"), {"n": n}) for n in range(6)]
    grading = Grading(sandbox=SandboxLimits(wall_s=3))
    results = grade_many(grader, cases, grading=grading)
    assert [result.score for result in results] == [0.0, 0.0, 0.2, 0.0, 0.4, 0.5]
    assert results[1].errors.unresponsive_reward_error
    assert results[3].errors.python_grader_runtime_error
    assert [bool(result.warnings) for result in results] == [False, True, False, True, False, False]
    assert [result.score for result in results] == [
        grade(grader, *case, grading=grading).score for case in cases
    ]

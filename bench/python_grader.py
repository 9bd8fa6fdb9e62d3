"""Python-grader throughput: the same `grade(sample, item)` on N cases called in this process with no
fence (the peer: what TRL's reward functions are), sandboxed one process per case (`grade`), and
sandboxed in one process per batch (`grade_many`, what a training step uses).

    python bench/python_grader.py [--cases 200]

Prints cases/s for each; the sandboxed scores must equal the unfenced ones."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from tuneforge.graders import Grading, Sample, grade, grade_many
from tuneforge.graders.models import PythonGrader

SOURCE = """
import re
def grade(sample, item):
    numbers = re.findall(r"-?\\d+", sample["output_text"])
    return 1.0 if numbers and int(numbers[-1]) == item["answer"] else 0.0
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    args = parser.parse_args()
    cases = [(Sample.from_text(f"the sum is {n + n % 3}"), {"answer": 2 * n}) for n in range(args.cases)]
    grader = PythonGrader(type="python", name="sum", source=SOURCE)
    scope: dict[str, Any] = {}
    exec(SOURCE, scope)  # the unfenced peer: trusted code, this process

    def unfenced() -> list[float]:
        return [scope["grade"](sample.namespace(), item) for sample, item in cases]

    def per_case() -> list[float]:
        return [grade(grader, sample, item, grading=Grading()).score for sample, item in cases]

    def batched() -> list[float]:
        return [result.score for result in grade_many(grader, cases, grading=Grading())]

    expected = None
    print(f"{'how':<34} {'cases/s':>10}")
    for name, run in (
        ("in process, no sandbox (peer)", unfenced),
        ("sandbox, a process per case", per_case),
        ("sandbox, a process per batch", batched),
    ):
        scores, rate = _timed(run, len(cases))
        expected = expected or scores
        assert scores == expected, f"{name} scored differently"
        print(f"{name:<34} {rate:>10.1f}")


def _timed(run: Callable[[], list[float]], n: int) -> tuple[list[float], float]:
    started = time.perf_counter()
    scores = run()
    return scores, n / (time.perf_counter() - started)


if __name__ == "__main__":
    main()

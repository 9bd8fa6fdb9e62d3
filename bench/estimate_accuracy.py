"""How true the preflight is: for tasks of different sizes and both tunings, the preflight's predicted
training time and peak memory against a real `tuneforge train` child's, run one after another in the same
fresh data dir (so the first task of each model and tuning is estimated from a warm-up, later ones may use
an earlier run's measured pace, as a server's preflights do). The peer is reality: the child's loop time
(from its hyperparameters event to its done event) and its peak RSS (`wait4`). Also shown: the estimate the
worker would hold after a tenth of the steps (the measured pace so far, as the runner revises
`estimated_finish`).

Usage: python bench/estimate_accuracy.py [--scale 1.0] [--tasks reviews-full,…]
Writes bench/results/estimate_accuracy.json. Target (issue 24): predicted time within ±30% of the actual on
an idle machine; say what the machine was doing when you quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.samples import cases, reviews
from tuneforge.settings import Settings
from tuneforge.spec import SupervisedHyperparameters, SupervisedMethod, TrainJob, TrainSpec, Tuning
from tuneforge.training.preflight import preflight

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Task:
    name: str
    rows: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    tuning: Tuning
    n_epochs: int  # set, so each run stays short; batch size and learning rate stay "auto"


def review_rows(n: int, seed: int) -> list[dict[str, Any]]:
    return [
        {"prompt": f"{r.text}\n\n###\n\n", "completion": f" {r.label}"}
        for r in reviews.generate(n, seed=seed)
    ]


def tasks(scale: float) -> list[Task]:
    def n(count: int) -> int:
        return max(16, round(count * scale))

    return [
        Task("reviews-full", review_rows(n(200), 1), review_rows(n(40), 2), "full", 2),
        Task("reviews-lora", review_rows(n(200), 3), [], "lora", 2),
        Task("emails-full", cases.emails(n(480), 1), cases.emails(n(60), 2), "full", 1),
        Task("entities-lora", cases.entities(n(160), 1), cases.entities(n(30), 2), "lora", 3),
        Task("chats-full", cases.support_chats(n(120), 1), [], "full", 3),
        Task("tweets-lora", cases.tweets(n(640), 1), [], "lora", 1),
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_task(task: Task, root: Path, settings: Settings, threads: int | None) -> dict[str, Any]:
    train = write_jsonl(root / f"{task.name}-train.jsonl", task.rows)
    valid = write_jsonl(root / f"{task.name}-valid.jsonl", task.valid) if task.valid else None
    spec = TrainSpec(
        model="tiny",
        training_file=str(train),
        validation_file=str(valid) if valid else None,
        method=SupervisedMethod(hyperparameters=SupervisedHyperparameters(n_epochs=task.n_epochs)),
        tuning=task.tuning,
        seed=0,
    )
    output = root / f"{task.name}-out"
    started = time.perf_counter()
    predicted = preflight(TrainJob.local(spec, output, threads=threads), settings)
    preflight_s = time.perf_counter() - started
    actual = train_child(spec, output, settings, threads)
    estimate = predicted.estimate
    return {
        "task": task.name,
        "tuning": task.tuning,
        "examples": predicted.n_train_examples,
        "steps": predicted.total_steps,
        "tokens": predicted.trained_tokens,
        "calibration": estimate.calibration,
        "preflight_s": round(preflight_s, 1),
        "predicted_s": estimate.seconds,
        "actual_s": actual["loop_s"],
        "time_ratio": round(estimate.seconds / actual["loop_s"], 2),
        "revised_at_10pct_s": actual["revised_s"],
        "revised_ratio": round(actual["revised_s"] / actual["loop_s"], 2) if actual["revised_s"] else None,
        "predicted_rss_mib": round(estimate.peak_cpu_bytes / 2**20),
        "actual_rss_mib": round(actual["peak_rss_bytes"] / 2**20),
        "rss_ratio": round(estimate.peak_cpu_bytes / actual["peak_rss_bytes"], 2),
        "trained_tokens": actual["trained_tokens"],
    }


def train_child(spec: TrainSpec, output: Path, settings: Settings, threads: int | None) -> dict[str, Any]:
    """`tuneforge train --events jsonl` as the worker runs it; times its loop from the events' arrival."""
    spec_file = output.parent / f"{output.name}-spec.json"
    spec_file.write_text(spec.model_dump_json())
    command = [sys.executable, "-m", "tuneforge", "train", "--spec", str(spec_file), "-o", str(output)]
    command += ["--events", "jsonl", "--data-dir", str(settings.data_dir)]
    command += ["--threads", str(threads)] if threads else []
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    announced = done = None
    paces: list[tuple[int, float]] = []  # (step, elapsed_s) of each metrics event
    total_steps, trained_tokens = 0, 0
    for line in child.stdout:
        event = json.loads(line) if line.startswith('{"type":') else {}
        kind = event.get("type")
        if kind == "hyperparameters":
            announced, total_steps = time.perf_counter(), event["resolved"]["total_steps"]
        elif kind == "metrics" and event.get("elapsed_s") is not None:
            paces.append((int(event["row"]["step"]), float(event["elapsed_s"])))
        elif kind == "done":
            done, trained_tokens = time.perf_counter(), event["trained_tokens"]
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or announced is None or done is None:
        raise RuntimeError(f"training failed (exit {child.returncode}): {' '.join(command)}")
    return {
        "loop_s": round(done - announced, 1),
        "revised_s": _revised(paces, total_steps),
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "trained_tokens": trained_tokens,
    }


def _revised(paces: list[tuple[int, float]], total_steps: int) -> float | None:
    """The loop's length as the runner would estimate it once a tenth of the steps are measured."""
    if len(paces) < 3:
        return None
    origin = paces[0]
    at = next((p for p in paces if p[0] >= max(origin[0] + 2, total_steps // 10)), paces[-1])
    pace = (at[1] - origin[1]) / max(1, at[0] - origin[0])
    return round(at[1] + pace * (total_steps - at[0]), 1)


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        ("task", "task"), ("steps", "steps"), ("tokens", "tokens"), ("calibration", "pace from"),
        ("predicted_s", "pred s"), ("actual_s", "actual s"), ("time_ratio", "pred/act"),
        ("revised_ratio", "at 10%/act"), ("predicted_rss_mib", "pred MiB"), ("actual_rss_mib", "act MiB"),
        ("rss_ratio", "pred/act"),
    ]  # fmt: skip
    widths = [max(len(title), *(len(str(r[key])) for r in rows)) for key, title in columns]
    lines = [" | ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for row in rows:
        lines.append(" | ".join(str(row[key]).ljust(w) for (key, _), w in zip(columns, widths, strict=True)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every task's example count")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args()
    chosen = [t for t in tasks(args.scale) if not args.tasks or t.name in args.tasks.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuneforge-estimate-") as scratch:
        root = Path(scratch)
        settings = Settings(data_dir=root / "data", auth=False)
        models = RESULTS / "base-models"  # built-ins are built once, not per run of the bench
        models.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir()
        (root / "data" / "base-models").symlink_to(models.resolve(), target_is_directory=True)
        rows = []
        for task in chosen:
            rows.append(run_task(task, root, settings, args.threads))
            print(json.dumps(rows[-1]), flush=True)
    print()
    print(table(rows))
    ratios = [r["time_ratio"] for r in rows]
    within = sum(0.7 <= r <= 1.3 for r in ratios)
    loads = f"load average before {load_before}, after {os.getloadavg()}"
    print(f"\ntime within ±30%: {within} of {len(rows)}; {loads}")
    RESULTS.mkdir(exist_ok=True)
    result = {
        "rows": rows,
        "time_within_30pct": within,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "scale": args.scale,
    }
    (RESULTS / "estimate_accuracy.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

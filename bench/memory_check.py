"""Peak memory at a real size on the CPU: the estimate (`training.estimate.peak_memory`, which the preflight
answers and the run announces in its Hyperparameters event) against the measured peak RSS of the training
process.

The model is Qwen2.5-0.5B's exact configuration (494M parameters, tied embeddings, 151,936-token
vocabulary) with random weights, built on this machine by `tuneforge.training.families` (no download). Each
run is the real `tuneforge train --events jsonl` in its own process: a few LoRA steps (all linear layers)
on chat data, with gradient checkpointing (`TUNEFORGE_GRADIENT_CHECKPOINTING`) and, for comparison in the
same run, without. The peak is the child's `ru_maxrss`; runs go one at a time (the machine's RAM is shared).

Usage: python bench/memory_check.py [--family qwen2.5] [--examples 16] [--words 60] [--batch-size 4]
                                    [--tuning lora] [--modes checkpointing,plain]
Writes bench/results/memory_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MODELS = RESULTS / "family-models"  # built once, reused by later runs
TOLERANCE = 0.25  # the bound: estimate within ±25% of the measured peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", default="qwen2.5")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--words", type=int, default=60, help="words per reply (sets the sequence length)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tuning", choices=["lora", "full"], default="lora")
    parser.add_argument("--modes", default="checkpointing,plain")
    args = parser.parse_args()

    model_dir = ensure_model(args.family)
    rows = []
    for mode in args.modes.split(","):
        rows.append(run(model_dir, args, checkpointing=mode == "checkpointing") | {"mode": mode})
    print_table(args, rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "memory_check.json"
    out.write_text(json.dumps({"family": args.family, "args": vars(args), "runs": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


def ensure_model(family: str) -> Path:
    target = MODELS / f"{family}-real"
    if not (target / "config.json").exists():
        print(f"building {family} at its real size into {target} (random weights, no download)...")
        from tuneforge.training import families

        families.build(family, target, shape="real")
    return target


def chats(n: int, words: int) -> list[dict[str, Any]]:
    vocabulary = [
        "the",
        "river",
        "is",
        "wide",
        "and",
        "blue",
        "while",
        "a",
        "cloud",
        "moves",
        "over",
        "stone",
    ]
    reply = lambda i: " ".join(vocabulary[(i + k) % len(vocabulary)] for k in range(words))  # noqa: E731
    return [
        {
            "messages": [
                {"role": "user", "content": f"Describe scene {i}."},
                {"role": "assistant", "content": reply(i)},
            ]
        }
        for i in range(n)
    ]


def run(model_dir: Path, args: argparse.Namespace, *, checkpointing: bool) -> dict[str, Any]:
    """One `tuneforge train` child; its announced estimate and its peak resident set."""
    with tempfile.TemporaryDirectory(prefix="memcheck-") as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in chats(args.examples, args.words)))
        command = [
            sys.executable, "-m", "tuneforge", "train", "--events", "jsonl", "-m", str(model_dir),
            "-t", str(data), "-o", str(Path(tmp) / "out"), "--tuning", args.tuning, "--n_epochs", "1",
            "--batch_size", str(args.batch_size), "--seed", "0", "--data-dir", str(Path(tmp) / "data"),
        ]  # fmt: skip
        env = {**os.environ, "TUNEFORGE_GRADIENT_CHECKPOINTING": str(checkpointing).lower()}
        stdout, code, peak_kib, stderr = run_measured(command, env, Path(tmp) / "stderr.log")
    if code != 0:
        raise SystemExit(f"tuneforge train failed ({code}):\n{stderr[-3000:]}")
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    facts = next(e for e in events if e.get("type") == "hyperparameters")["facts"]
    measured = peak_kib / 2**20
    predicted = float(facts["estimated_peak_gib"])
    return {
        "checkpointing": checkpointing,
        "n_parameters": facts["n_parameters"],
        "trainable_parameters": facts["trainable_parameters"],
        "steps": next(e for e in events if e.get("type") == "done")["step"],
        "predicted_gib": predicted,
        "measured_gib": round(measured, 3),
        "error": round(predicted / measured - 1, 3),
    }


def run_measured(command: list[str], env: dict[str, str], log: Path) -> tuple[str, int, int, str]:
    """stdout, exit code and peak RSS (KiB) of this one child: wait4 reports its own rusage, where
    RUSAGE_CHILDREN would report the largest of every child so far."""
    with log.open("w") as err:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert child.stdout is not None
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return stdout, child.returncode, usage.ru_maxrss, log.read_text()


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    print(f"\n{args.family} (real size), {args.tuning}, batch {args.batch_size}, {args.examples} examples")
    print(
        f"{'mode':<14}{'params':>10}{'trainable':>11}{'steps':>6}{'predicted':>11}{'measured':>10}{'error':>8}"
    )
    for r in rows:
        print(
            f"{r['mode']:<14}{r['n_parameters'] / 1e6:>9.1f}M{r['trainable_parameters'] / 1e6:>10.2f}M"
            f"{r['steps']:>6}{r['predicted_gib']:>10.2f}G{r['measured_gib']:>9.2f}G{r['error']:>+8.1%}"
        )
    worst = max(abs(r["error"]) for r in rows)
    print(
        f"worst error {worst:.1%} (bound ±{TOLERANCE:.0%}): {'within' if worst <= TOLERANCE else 'OUTSIDE'}"
    )


if __name__ == "__main__":
    main()

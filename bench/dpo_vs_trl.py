"""tuneforge's DPO against TRL's DPOTrainer on the CPU, in one run: the same starting model (the built-in
`tiny` fine-tuned by tuneforge on replies in two styles), the same preference pairs (the loud reply
preferred), the same steps, batch size, learning rate and beta. TRL runs in its own venv (as in
bench/train_vs_trl.py), fp32 with use_cpu=True and its defaults otherwise: a frozen copy of the model as
the reference, evaluated at every step. tuneforge computes the reference log-probabilities once instead.

Reports real (non-padding) tokens/s over the training call, and the held-out reward accuracy of both
final models: the share of held-out pairs whose preferred output gains more log-probability over the
starting model than the other, computed by the same function for both.

Usage: python bench/dpo_vs_trl.py [--pairs 400] [--epochs 1] [--batch-size 8] [--lr 1e-4] [--beta 0.1]
Writes bench/results/dpo_vs_trl.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from train_vs_trl import RESULTS, ensure_trl_venv
from tuneforge.data.readers import read_preference_pairs
from tuneforge.samples.styles import HELD_OUT_WORDS, TRAIN_WORDS, mixed_chats, preference_pairs
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training import preference
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train

TRL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    began = time.perf_counter()
    model_dir, data, out, epochs, batch, lr, beta, threads = sys.argv[1:9]
    if int(threads):
        torch.set_num_threads(int(threads))
    rows = []
    for line in open(data):
        pair = json.loads(line)
        rows.append({"prompt": pair["input"]["messages"], "chosen": pair["preferred_output"],
                     "rejected": pair["non_preferred_output"]})
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = DPOConfig(output_dir=out, num_train_epochs=float(epochs), per_device_train_batch_size=int(batch),
                       learning_rate=float(lr), beta=float(beta), use_cpu=True, bf16=False, report_to=[],
                       save_strategy="no", logging_steps=10, max_length=1024)
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    cpu = time.process_time()
    metrics = trainer.train().metrics
    cpu = time.process_time() - cpu
    trainer.save_model(out + "/final")
    tokens = sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"])
                 for r in trainer.train_dataset) * int(epochs)
    wall = time.perf_counter() - began
    print(json.dumps({"train_runtime": metrics["train_runtime"], "cpu": cpu, "wall": wall, "tokens": tokens}))
""")


def more_words(n: int, seed: int) -> list[str]:
    """The task's words, then made-up ones: more pairs for a measurable run."""
    rng = random.Random(seed)
    words = list(TRAIN_WORDS)
    while len(words) < n:
        words.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))))
    return words[:n]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def supervised_start(root: Path, settings: Settings) -> Path:
    data = write_jsonl(root / "chats.jsonl", mixed_chats(TRAIN_WORDS))
    spec = TrainSpec.model_validate(  # 10 epochs: enough to answer in the two styles; DPO is what is timed
        {
            "model": "tiny",
            "training_file": str(data),
            "seed": 0,
            "method": {"hyperparameters": {"n_epochs": 10}},
        }
    )
    return train(TrainJob.local(spec, root / "sft"), settings, ListSink()).output_dir


def run_tuneforge(
    start: Path, data: Path, out: Path, args: argparse.Namespace, settings: Settings
) -> dict[str, Any]:
    hyperparameters = {
        "n_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate_multiplier": args.lr / 1e-3,  # built-in full: 1e-2 x 0.1 for DPO
        "beta": args.beta,
    }
    spec = TrainSpec.model_validate(
        {
            "model": str(start),
            "training_file": str(data),
            "method": {"type": "dpo", "hyperparameters": hyperparameters},
            "seed": 0,
        }
    )
    began = time.perf_counter()
    job = TrainJob.local(spec, out, eval_every=10**9, threads=args.threads or None)
    result = train(job, settings, ListSink())
    assert abs(result.hyperparameters.learning_rate - args.lr) < 1e-12
    wall = time.perf_counter() - began
    return {"train_seconds": result.train_seconds, "cpu": result.train_cpu_seconds, "wall": wall}


def run_trl(python: Path, start: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    script = out.parent / "trl_dpo_run.py"
    script.write_text(TRL_SCRIPT)
    argv = [str(python), str(script), str(start), str(data), str(out)]
    argv += [str(v) for v in (args.epochs, args.batch_size, args.lr, args.beta, args.threads)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def reward_accuracy(model_dir: Path, start: Path, held_out: Path) -> float:
    """Held-out pairs whose preferred output gained more log-probability over the start than the other."""
    tokenizer = AutoTokenizer.from_pretrained(start)
    pairs = preference.encode_pairs(read_preference_pairs(held_out), tokenizer, 1024)
    device = torch.device("cpu")
    reference = preference.with_reference(AutoModelForCausalLM.from_pretrained(start), pairs, 0, device)
    scored = preference.with_reference(AutoModelForCausalLM.from_pretrained(model_dir), pairs, 0, device)
    wins = [
        (s.ref_chosen - r.ref_chosen) > (s.ref_rejected - r.ref_rejected)
        for s, r in zip(scored, reference, strict=True)
    ]
    return sum(wins) / len(wins)


def real_tokens(start: Path, data: Path) -> int:
    tokenizer = AutoTokenizer.from_pretrained(start)
    return sum(p.tokens for p in preference.encode_pairs(read_preference_pairs(data), tokenizer, 1024))


def one_round(
    index: int, python: Path, start: Path, data: Path, held_out: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Both systems once, in an order that alternates from round to round."""
    root = data.parent / f"round-{index}"
    root.mkdir()
    settings = Settings(data_dir=data.parent / "data")
    systems = ["tuneforge", "trl DPOTrainer"] if index % 2 == 0 else ["trl DPOTrainer", "tuneforge"]
    rows = {}
    for system in systems:
        if system == "tuneforge":
            timing = run_tuneforge(start, data, root / "tuneforge", args, settings)
            final, seconds, tokens = root / "tuneforge", timing["train_seconds"], None
        else:
            timing = run_trl(python, start, data, root / "trl", args)
            final, seconds, tokens = root / "trl" / "final", timing["train_runtime"], timing["tokens"]
        rows[system] = {
            "round": index,
            "system": system,
            "seconds": seconds,
            "cpu_seconds": timing["cpu"],
            "end_to_end_seconds": timing["wall"],
            "own_token_count": tokens,
            "accuracy": reward_accuracy(final, start, held_out),
        }
    print(json.dumps(list(rows.values())), flush=True)  # each round as it ends: a long run shows progress
    return [rows["tuneforge"], rows["trl DPOTrainer"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="tuneforge-dpo-bench-"))
    python = ensure_trl_venv()
    start = supervised_start(root, Settings(data_dir=root / "data"))
    data = write_jsonl(root / "pairs.jsonl", preference_pairs(more_words(args.pairs, seed=1)))
    held_out = write_jsonl(root / "held_out.jsonl", preference_pairs(HELD_OUT_WORDS))
    tokens = real_tokens(start, data) * args.epochs

    rows = [row for i in range(args.repeats) for row in one_round(i, python, start, data, held_out, args)]
    for row in rows:
        row["tokens_per_s"] = tokens / row["seconds"]
        row["tokens_per_cpu_s"] = tokens / row["cpu_seconds"]
    pairs_of_rows = list(zip(rows[::2], rows[1::2], strict=True))
    speedups = [ours["tokens_per_s"] / theirs["tokens_per_s"] for ours, theirs in pairs_of_rows]
    cpu_speedups = [ours["tokens_per_cpu_s"] / theirs["tokens_per_cpu_s"] for ours, theirs in pairs_of_rows]
    print(
        f"{args.pairs} pairs x {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr}, "
        f"beta {args.beta}, threads {args.threads or torch.get_num_threads()}; {tokens:,} real tokens"
    )
    print(
        f"{'round':>5} {'system':<15} {'train s':>8} {'tokens/s':>9} {'cpu s':>7} {'tokens/cpu-s':>12} "
        f"{'end-to-end s':>12} {'own tokens':>10} {'held-out reward acc':>19}"
    )
    for row in rows:
        own = f"{row['own_token_count']:>10,}" if row["own_token_count"] else f"{'same':>10}"
        print(
            f"{row['round']:>5} {row['system']:<15} {row['seconds']:>8.1f} {row['tokens_per_s']:>9,.0f} "
            f"{row['cpu_seconds']:>7.1f} {row['tokens_per_cpu_s']:>12,.0f} "
            f"{row['end_to_end_seconds']:>12.1f} {own} {row['accuracy']:>19.3f}"
        )
    print("speed-up per round (tokens/s): " + ", ".join(f"{x:.2f}x" for x in speedups))
    print("speed-up per round (tokens/cpu-s): " + ", ".join(f"{x:.2f}x" for x in cpu_speedups))
    print(
        f"median speed-up: {statistics.median(speedups):.2f}x in tokens/s, "
        f"{statistics.median(cpu_speedups):.2f}x in tokens per CPU second"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dpo_vs_trl.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "real_tokens": tokens,
                "rows": rows,
                "speedups": speedups,
                "median_speedup": statistics.median(speedups),
                "cpu_speedups": cpu_speedups,
                "median_cpu_speedup": statistics.median(cpu_speedups),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    model_dir, data, out, epochs, batch, lr, beta = sys.argv[1:8]
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
    start = time.perf_counter()
    metrics = trainer.train().metrics
    seconds = time.perf_counter() - start
    trainer.save_model(out + "/final")
    print(json.dumps({"train_runtime": metrics["train_runtime"], "wall": seconds}))
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


def run_tuneforge(start: Path, data: Path, out: Path, args: argparse.Namespace, settings: Settings) -> float:
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
    result = train(TrainJob.local(spec, out, eval_every=10**9), settings, ListSink())
    assert abs(result.hyperparameters.learning_rate - args.lr) < 1e-12
    return time.perf_counter() - began  # the whole call: loading, the reference pass, saving


def run_trl(python: Path, start: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    script = out.parent / "trl_dpo_run.py"
    script.write_text(TRL_SCRIPT)
    argv = [str(python), str(script), str(start), str(data), str(out)]
    argv += [str(v) for v in (args.epochs, args.batch_size, args.lr, args.beta)]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    root = Path(tempfile.mkdtemp(prefix="tuneforge-dpo-bench-"))
    settings = Settings(data_dir=root / "data")
    python = ensure_trl_venv()
    start = supervised_start(root, settings)
    data = write_jsonl(root / "pairs.jsonl", preference_pairs(more_words(args.pairs, seed=1)))
    held_out = write_jsonl(root / "held_out.jsonl", preference_pairs(HELD_OUT_WORDS))
    tokens = real_tokens(start, data) * args.epochs

    ours = run_tuneforge(start, data, root / "tuneforge", args, settings)
    theirs = run_trl(python, start, data, root / "trl", args)
    rows = [
        {
            "system": "tuneforge",
            "seconds": ours,
            "accuracy": reward_accuracy(root / "tuneforge", start, held_out),
        },
        {
            "system": "trl DPOTrainer",
            "seconds": theirs["train_runtime"],
            "accuracy": reward_accuracy(root / "trl" / "final", start, held_out),
        },
    ]
    for row in rows:
        row["tokens_per_s"] = tokens / row["seconds"]
    speedup = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    print(
        f"{args.pairs} pairs x {args.epochs} epoch(s), batch {args.batch_size}, "
        f"lr {args.lr}, beta {args.beta}"
    )
    print(f"{'system':<16} {'seconds':>8} {'tokens/s':>10} {'held-out reward acc':>20}")
    for row in rows:
        speed = f"{row['seconds']:>8.1f} {row['tokens_per_s']:>10,.0f}"
        print(f"{row['system']:<16} {speed} {row['accuracy']:>20.3f}")
    print(f"speed-up: {speedup:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dpo_vs_trl.json").write_text(
        json.dumps({"args": vars(args), "real_tokens": tokens, "rows": rows, "speedup": speedup}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

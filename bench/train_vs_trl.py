"""tuneforge's training loop against TRL's SFTTrainer on the CPU, in one run: the same randomly
initialised Llama of about 3M parameters, the same 2,000 variable-length prompt/completion examples, the
same epochs, batch size and learning rate. TRL runs in its own venv (created here with pip: trl and
torch==2.13.0), fp32 with use_cpu=True, bf16=False, and its defaults otherwise.

Reports real (non-padding) tokens/s, the final validation loss (mean cross-entropy over completion tokens,
computed by the same function for both models) and model FLOP utilisation, 6 * params * real tokens / time,
against an fp32 matmul peak measured in the same run.

Usage: python bench/train_vs_trl.py [--examples 2000] [--epochs 1] [--batch-size 8] [--lr 1e-3]
Writes bench/results/train_vs_trl.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.byte_tokenizer import build_byte_tokenizer
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train

RESULTS = Path(__file__).parent / "results"
TRL_VENV = RESULTS / "trl-venv"
WORDS = [
    "river",
    "stone",
    "lamp",
    "orbit",
    "maple",
    "quartz",
    "ember",
    "falcon",
    "harbor",
    "velvet",
    "cobalt",
    "tundra",
    "saffron",
    "willow",
    "glacier",
    "meadow",
    "lantern",
    "pepper",
    "violet",
    "canyon",
]

TRL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    model_dir, data, out, epochs, batch, lr = sys.argv[1:7]
    rows = [json.loads(line) for line in open(data)]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = SFTConfig(output_dir=out, num_train_epochs=float(epochs), per_device_train_batch_size=int(batch),
                       learning_rate=float(lr), use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                       logging_steps=50, max_length=1024)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    start = time.perf_counter()
    metrics = trainer.train().metrics
    seconds = time.perf_counter() - start
    trainer.save_model(out + "/final")
    print(json.dumps({"train_runtime": metrics["train_runtime"], "wall": seconds}))
""")


def make_examples(n: int, seed: int) -> list[dict[str, str]]:
    """Variable length (about 30 to 300 tokens); the completion copies the first and last words, so a
    model can learn it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(4, 40))
        rows.append(
            {
                "prompt": "Text: " + " ".join(words) + "\nFirst and last:",
                "completion": f" {words[0]} {words[-1]}",
            }
        )
    return rows


def build_model(target: Path) -> int:
    tokenizer = build_byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())


def matmul_peak(seconds: float = 3.0) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * 2048**3 * count / (time.perf_counter() - start)


def real_tokens(rows: list[dict[str, str]]) -> int:
    tokenizer = build_byte_tokenizer()
    return sum(len(tokenizer(r["prompt"] + r["completion"]).input_ids) + 1 for r in rows)


def validation_loss(model_dir: Path, rows: list[dict[str, str]]) -> float:
    """Mean cross-entropy over completion tokens (with eos), one example at a time: no padding question."""
    tokenizer = build_byte_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            prompt = tokenizer(row["prompt"]).input_ids
            ids = prompt + tokenizer(row["completion"]).input_ids + [tokenizer.eos_token_id]
            logits = model(torch.tensor([ids[:-1]])).logits[0, len(prompt) - 1 :]
            loss = torch.nn.functional.cross_entropy(
                logits, torch.tensor(ids[len(prompt) :]), reduction="sum"
            )
            total, count = total + float(loss), count + len(ids) - len(prompt)
    return total / count


def ensure_trl_venv() -> Path:
    python = TRL_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TRL_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "trl"], check=True)
    return python


def run_trl(python: Path, model_dir: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    script = out.parent / "trl_run.py"
    script.write_text(TRL_SCRIPT)
    done = subprocess.run(
        [
            str(python),
            str(script),
            str(model_dir),
            str(data),
            str(out),
            str(args.epochs),
            str(args.batch_size),
            str(args.lr),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_tuneforge(model_dir: Path, data: Path, out: Path, args: argparse.Namespace, root: Path) -> float:
    hyperparameters = {
        "n_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate_multiplier": args.lr / 1e-4,  # full, pretrained
        "prompt_loss_weight": 0.0,
    }
    spec = TrainSpec.model_validate(
        {
            "model": str(model_dir),
            "training_file": str(data),
            "method": {"type": "supervised", "hyperparameters": hyperparameters},
            "tuning": "full",
            "seed": 0,
        }
    )
    config = TrainJob.local(spec, out, eval_every=10**9)
    result = train(config, Settings(data_dir=root / "data"), ListSink())
    assert abs(result.hyperparameters.learning_rate - args.lr) < 1e-12
    return result.train_seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    python = ensure_trl_venv()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = build_model(root / "base")
        rows, valid = make_examples(args.examples, seed=1), make_examples(200, seed=2)
        data = root / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tokens = real_tokens(rows) * args.epochs
        peak = matmul_peak()
        tf_seconds = run_tuneforge(root / "base", data, root / "tuneforge", args, root)
        trl = run_trl(python, root / "base", data, root / "trl", args)
        peak = max(peak, matmul_peak())  # measured before and after: the higher reading is the machine's
        report = {"params": params, "real_tokens": tokens, "peak_gflops": peak / 1e9, "args": vars(args)}
        for name, seconds, model_dir in [
            ("tuneforge", tf_seconds, root / "tuneforge"),
            ("trl", trl["train_runtime"], root / "trl" / "final"),
        ]:
            report[name] = {
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                "mfu": 6 * params * tokens / seconds / peak,
                "validation_loss": validation_loss(model_dir, valid),
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_vs_trl.json").write_text(json.dumps(report, indent=2))
    print(f"{params / 1e6:.2f}M params, {tokens:,} real tokens, fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'trainer':<10} {'seconds':>8} {'real tok/s':>10} {'MFU':>6} {'val loss':>9}")
    for name in ("tuneforge", "trl"):
        r = report[name]
        cells = (
            f"{r['seconds']:>8.1f} {r['tokens_per_s']:>10,.0f} {r['mfu']:>6.1%} {r['validation_loss']:>9.4f}"
        )
        print(f"{name:<10} {cells}")
    speedup = report["tuneforge"]["tokens_per_s"] / report["trl"]["tokens_per_s"]
    print(f"speed-up {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

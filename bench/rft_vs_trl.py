"""tuneforge's reinforcement fine-tuning against TRL's GRPOTrainer on the CPU, in one run: the same
starting model (the built-in `tiny` fine-tuned by tuneforge to answer in either of two styles), the same
prompts, the same reward (samples/styles.py's LOUD_GRADER: tuneforge runs it as a `python` grader in its
sandbox, TRL calls the same source in-process), the same samples per prompt, prompts per step, steps,
learning rate, temperature, KL weight (beta) and clip range, and GRPO's per-sequence loss
(`loss_type="grpo"`) for both. TRL runs in its own venv (bench/train_vs_trl.py), fp32, use_cpu=True.

Reports samples/s over the training call (tuneforge: the time in its optimizer steps, sampling and
grading included; TRL: `train_runtime`) and per CPU second of that span (what a busy machine's load does
not change), the mean training reward of the last steps, and the held-out score: the same reward of each
final model's greedy answers to questions about words neither saw. `--repeats` runs both that many times,
alternating which goes first; `--threads` gives both the same torch thread count (a two-core machine
shared with other work slows a two-thread process far more than a one-thread one).

Usage: python bench/rft_vs_trl.py [--steps 10] [--prompts 8] [--samples 8] [--lr 1e-3] [--threads 1]
                                  [--repeats 3] [--start DIR]
Writes bench/results/rft_vs_trl.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from train_vs_trl import RESULTS, ensure_trl_venv
from tuneforge.samples.styles import (
    HELD_OUT_WORDS,
    LOUD_GRADER,
    TRAIN_WORDS,
    loud_score,
    question,
    reinforcement_items,
    short_chats,
)
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train

MAX_TOKENS = 128  # longest sampled answer, for both: tuneforge's at reasoning_effort "low"
BETA, CLIP, TEMPERATURE = 0.04, 0.2, 1.0  # tuneforge's fixed values; TRL is given the same

TRL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    model_dir, data, grader, out, steps, prompts, samples, lr, max_tokens, beta, clip = sys.argv[1:12]
    threads, seed = sys.argv[12:14]
    if int(threads):
        import torch
        torch.set_num_threads(int(threads))
    scope = {}
    exec(open(grader).read(), scope)

    def reward(completions, word, **_):
        return [float(scope["grade"]({"output_text": c[0]["content"]}, {"word": w}))
                for c, w in zip(completions, word)]

    rows = [{"prompt": item["messages"], "word": item["word"]} for item in map(json.loads, open(data))]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = GRPOConfig(
        output_dir=out, max_steps=int(steps), per_device_train_batch_size=int(prompts) * int(samples),
        num_generations=int(samples), max_completion_length=int(max_tokens), learning_rate=float(lr),
        beta=float(beta), epsilon=float(clip), temperature=1.0, loss_type="grpo", scale_rewards="group",
        num_iterations=1, lr_scheduler_type="linear", warmup_steps=1, weight_decay=0.0,
        use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=1, seed=int(seed),
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    cpu = time.process_time()
    metrics = trainer.train().metrics
    cpu = time.process_time() - cpu
    trainer.save_model(out + "/final")
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history
               if "completions/mean_length" in log]
    print(json.dumps({"train_runtime": metrics["train_runtime"], "cpu": cpu, "rewards": rewards,
                      "lengths": lengths}))
""")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def supervised_start(root: Path, settings: Settings) -> Path:
    """`tiny` taught the answer format: sampled, it replies "ok." about two times in three and "SURE!" about
    one in four, and greedily "ok." (held-out score 0). Fewer epochs leave the random built-in sampling
    bytes at random: two epochs gave rewards near 0.07 and 128-token samples, a run that measures
    nothing."""
    data = write_jsonl(root / "chats.jsonl", short_chats(TRAIN_WORDS))
    spec = TrainSpec.model_validate(
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
        "n_epochs": 1,
        "batch_size": args.prompts,
        "learning_rate_multiplier": args.lr / 1e-3,  # built-in full: 1e-2 x 0.1 for RFT
        "compute_multiplier": args.samples / 8,
        "reasoning_effort": "low",
    }
    spec = TrainSpec.model_validate(
        {
            "model": str(start),
            "training_file": str(data),
            "method": {
                "type": "reinforcement",
                "hyperparameters": hyperparameters,
                "grader": {"type": "python", "name": "loud", "source": LOUD_GRADER},
            },
            "seed": args.seed,
        }
    )
    job = TrainJob.local(spec, out, eval_every=10**9, threads=args.threads or None)
    result = train(job, settings, ListSink())
    hp = result.hyperparameters
    assert abs(hp.learning_rate - args.lr) < 1e-12 and hp.samples_per_prompt == args.samples
    assert result.step == args.steps
    with (out / "results.csv").open() as rows:
        steps = list(csv.DictReader(rows))
    rewards = [float(row["training_reward_mean"]) for row in steps]
    lengths = [float(row["training_sample_length"]) for row in steps]
    return {
        "seconds": result.train_seconds,
        "cpu": result.train_cpu_seconds,
        "rewards": rewards,
        "lengths": lengths,
    }


def run_trl(python: Path, start: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    script, grader = out.parent / "trl_grpo_run.py", out.parent / "grader.py"
    script.write_text(TRL_SCRIPT)
    grader.write_text(LOUD_GRADER)
    argv = [str(python), str(script), str(start), str(data), str(grader), str(out)]
    argv += [str(v) for v in (args.steps, args.prompts, args.samples, args.lr, MAX_TOKENS, BETA, CLIP)]
    argv += [str(args.threads), str(args.seed)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def held_out_score(model_dir: Path) -> float:
    """LOUD_GRADER's mean over greedy answers to the held-out questions (same code for both models)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    scores = []
    for word in HELD_OUT_WORDS:
        text = tokenizer.apply_chat_template(question(word), tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tokenizer(str(text), add_special_tokens=False)["input_ids"]])
        out = model.generate(
            ids, max_new_tokens=MAX_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        scores.append(loud_score(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)))
    return sum(scores) / len(scores)


def one_round(
    index: int, python: Path, start: Path, data: Path, args: argparse.Namespace, settings: Settings
) -> list[dict[str, Any]]:
    """Both systems once, in an order that alternates from round to round; tuneforge's row first."""
    root = data.parent / f"round-{index}"
    root.mkdir()
    systems = ["tuneforge", "trl GRPOTrainer"] if index % 2 == 0 else ["trl GRPOTrainer", "tuneforge"]
    rows: dict[str, dict[str, Any]] = {}
    for system in systems:
        if system == "tuneforge":
            ran = run_tuneforge(start, data, root / "tuneforge", args, settings)
            seconds, model = ran["seconds"], root / "tuneforge"
        else:
            ran = run_trl(python, start, data, root / "trl", args)
            seconds, model = ran["train_runtime"], root / "trl" / "final"
        samples = args.steps * args.prompts * args.samples
        last = max(1, args.steps // 4)  # the mean reward of the last quarter of the steps
        rows[system] = {
            "round": index,
            "system": system,
            "seconds": seconds,
            "cpu_seconds": ran["cpu"],
            "samples_per_s": samples / seconds,
            "samples_per_cpu_s": samples / ran["cpu"],
            "rewards": ran["rewards"],
            "mean_length": statistics.fmean(ran["lengths"]),
            "last_reward": statistics.fmean(ran["rewards"][-last:]),
            "held_out": held_out_score(model),
        }
    print(json.dumps(list(rows.values())), flush=True)  # each round as it ends: a long run shows progress
    return [rows["tuneforge"], rows["trl GRPOTrainer"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="both systems' sampling seed")
    parser.add_argument("--start", type=Path, help="a supervised start model (default: trained here)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="tuneforge-rft-bench-"))
    settings = Settings(data_dir=root / "data")
    python = ensure_trl_venv()
    start = args.start or supervised_start(root, settings)
    # One epoch of exactly `steps` batches for both: the training words, cycled.
    words = list(itertools.islice(itertools.cycle(TRAIN_WORDS), args.steps * args.prompts))
    data = write_jsonl(root / "items.jsonl", reinforcement_items(words))

    start_score = held_out_score(start)
    rows = [row for i in range(args.repeats) for row in one_round(i, python, start, data, args, settings)]
    pairs = list(zip(rows[::2], rows[1::2], strict=True))
    speedups = [ours["samples_per_s"] / theirs["samples_per_s"] for ours, theirs in pairs]
    cpu_speedups = [ours["samples_per_cpu_s"] / theirs["samples_per_cpu_s"] for ours, theirs in pairs]
    print(
        f"{args.steps} steps x {args.prompts} prompts x {args.samples} samples, lr {args.lr}, beta {BETA}, "
        f"clip {CLIP}, up to {MAX_TOKENS} tokens, threads {args.threads or torch.get_num_threads()}, "
        f"seed {args.seed}; "
        f"held-out score of the start: {start_score:.3f}"
    )
    print(
        f"{'round':>5} {'system':<16} {'seconds':>8} {'samples/s':>10} {'cpu s':>7} {'samples/cpu-s':>13} "
        f"{'mean length':>11} {'last reward':>12} {'held-out':>9}"
    )
    for row in rows:
        print(
            f"{row['round']:>5} {row['system']:<16} {row['seconds']:>8.1f} {row['samples_per_s']:>10.1f} "
            f"{row['cpu_seconds']:>7.1f} {row['samples_per_cpu_s']:>13.1f} {row['mean_length']:>11.1f} "
            f"{row['last_reward']:>12.3f} "
            f"{row['held_out']:>9.3f}"
        )
    print("speed-up per round (samples/s): " + ", ".join(f"{x:.2f}x" for x in speedups))
    print("speed-up per round (samples/cpu-s): " + ", ".join(f"{x:.2f}x" for x in cpu_speedups))
    print(
        f"median speed-up: {statistics.median(speedups):.2f}x in samples/s, "
        f"{statistics.median(cpu_speedups):.2f}x in samples per CPU second"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rft_vs_trl.json").write_text(
        json.dumps(
            {
                "args": {**vars(args), "start": str(start)},
                "start_held_out": start_score,
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

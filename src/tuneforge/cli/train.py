"""`tuneforge train`: fine-tune a base model on a JSONL file, with a live progress bar, or with
`--events jsonl` one JSON event per line on stdout (how the worker runs it in a child process)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tuneforge.cli.common import add_data_dir, settings_from
from tuneforge.cli.progress import start_step_bar
from tuneforge.errors import TuneforgeError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="fine-tune a base model on a JSONL file")
    parser.add_argument("--model", "-m", required=True, help="base model: built-in, alias, local dir, hub id")
    parser.add_argument("--training_file", "--training-file", "-t", type=Path, required=True)
    parser.add_argument("--validation_file", "--validation-file", "-v", type=Path, default=None)
    parser.add_argument("--output_dir", "--output-dir", "-o", type=Path, default=Path("tuneforge-output"))
    parser.add_argument("--n_epochs", "--n-epochs", type=int, default=None, help="default: auto")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=None, help="default: auto")
    parser.add_argument("--learning_rate_multiplier", "--learning-rate-multiplier", type=float, default=None)
    parser.add_argument("--prompt_loss_weight", "--prompt-loss-weight", type=float, default=0.01)
    parser.add_argument(
        "--compute_classification_metrics", "--compute-classification-metrics", action="store_true"
    )
    parser.add_argument("--classification_n_classes", "--classification-n-classes", type=int, default=None)
    parser.add_argument("--classification_positive_class", "--classification-positive-class", default=None)
    parser.add_argument("--classification_betas", "--classification-betas", type=float, nargs="+", default=[])
    parser.add_argument("--method", choices=["lora", "full"], default=None, help="default: by base model")
    parser.add_argument("--lora_r", "--lora-r", type=int, default=8)
    parser.add_argument("--lora_alpha", "--lora-alpha", type=int, default=16)
    parser.add_argument("--lora_dropout", "--lora-dropout", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None, help="default: random, recorded in the manifest")
    parser.add_argument("--suffix", default=None, help="recorded in the manifest (model naming)")
    parser.add_argument("--checkpoint-every", "--checkpoint_every", type=int, default=None, help="steps")
    parser.add_argument("--eval-every", "--eval_every", type=int, default=None, help="steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint, if any")
    parser.add_argument(
        "--events",
        choices=["bar", "jsonl"],
        default="bar",
        help="jsonl: one JSON event per line on stdout, no progress bar",
    )
    add_data_dir(parser)
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.events == "jsonl":
        return _run_with_jsonl(args)
    from tuneforge.training.recipe import train

    with _ProgressSink() as sink:
        result = train(_config(args), settings_from(args), sink)
    print(f"Fine-tuned model written to {result.output_dir} (step {result.step}).")
    for key, value in result.metrics.items():
        if key not in ("step", "elapsed_tokens", "elapsed_examples"):
            print(f"  {key}: {value:.4f}")
    return 0


def _run_with_jsonl(args: argparse.Namespace) -> int:
    """The worker's protocol: events on stdout, logs on stderr; an `error` event before a non-zero exit
    (2 for bad input, 1 otherwise, 143 when stopped by SIGTERM)."""
    from tuneforge.training.events import JsonlSink
    from tuneforge.training.recipe import TrainingInterrupted, train

    sink = JsonlSink(sys.stdout)
    try:
        train(_config(args), settings_from(args), sink)
        return 0
    except TrainingInterrupted as exc:
        sink.emit({"type": "error", "code": exc.code, "message": exc.message, "param": None})
        return 143
    except TuneforgeError as exc:
        sink.emit({"type": "error", "code": exc.code or exc.type, "message": exc.message, "param": exc.param})
        return 2 if exc.status < 500 else 1
    except Exception as exc:  # an unexpected failure still ends with an error event the worker can store
        traceback.print_exc(file=sys.stderr)
        sink.emit(
            {
                "type": "error",
                "code": "training_failed",
                "param": None,
                "message": f"Training failed: {type(exc).__name__}: {exc}",
            }
        )
        return 1


def _config(args: argparse.Namespace) -> Any:
    from tuneforge.training.recipe import TrainConfig

    return TrainConfig(
        model=args.model,
        training_file=args.training_file,
        validation_file=args.validation_file,
        output_dir=args.output_dir,
        n_epochs=args.n_epochs,
        batch_size=args.batch_size,
        learning_rate_multiplier=args.learning_rate_multiplier,
        prompt_loss_weight=args.prompt_loss_weight,
        compute_classification_metrics=args.compute_classification_metrics,
        classification_n_classes=args.classification_n_classes,
        classification_positive_class=args.classification_positive_class,
        classification_betas=list(args.classification_betas),
        method=args.method,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        seed=args.seed,
        suffix=args.suffix,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        threads=args.threads,
        resume=args.resume,
    )


class _ProgressSink:
    """A live bar (step, loss, real tokens/s, time left) plus messages, for people at a terminal."""

    def __enter__(self) -> _ProgressSink:
        self.progress, self.task = start_step_bar()
        self.first: tuple[float, float] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def emit(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "hyperparameters":
            self.progress.update(self.task, total=event["data"]["total_steps"])
        elif kind == "metrics":
            self._advance(event["data"])
        elif kind == "message":
            self.progress.console.print(
                f"{event['level']}: {event['message']}", markup=False, highlight=False
            )
        elif kind == "checkpoint":
            self.progress.console.print(f"checkpoint at step {event['step']}: {event['path']}", markup=False)

    def _advance(self, row: dict[str, float]) -> None:
        now, tokens = time.monotonic(), row["elapsed_tokens"]
        if self.first is None:  # rate from the first step on: loading and set-up are not training
            self.first = (now, tokens)
        rate = (tokens - self.first[1]) / max(1e-9, now - self.first[0])
        info = f"loss {row.get('training_loss', float('nan')):.3f}  {rate:,.0f} tok/s"
        if "validation_loss" in row:
            info += f"  val {row['validation_loss']:.3f}"
        self.progress.update(self.task, completed=int(row["step"]), info=info)

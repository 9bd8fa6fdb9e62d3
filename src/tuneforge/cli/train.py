"""`tuneforge train`: fine-tune a model on a JSONL file without a server, with a live progress bar (or
`--events jsonl`: one JSON event per line on stdout). It builds the same `TrainSpec` the APIs build, from
its flags or from `--spec FILE`; the method's hyperparameter flags are generated from the spec, and a
reinforcement run's grader is a JSON file (`--grader`), as the API takes it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from tuneforge import graders
from tuneforge.cli.common import add_data_dir, settings_from
from tuneforge.cli.progress import start_step_bar
from tuneforge.errors import InvalidGrader, InvalidRequest
from tuneforge.inference import scorer
from tuneforge.spec import (
    DpoHyperparameters,
    ReinforcementHyperparameters,
    SupervisedHyperparameters,
    TrainJob,
    TrainSpec,
)

# Each method's hyperparameters.
METHODS: dict[str, type[BaseModel]] = {
    "supervised": SupervisedHyperparameters,
    "dpo": DpoHyperparameters,
    "reinforcement": ReinforcementHyperparameters,
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="fine-tune a base model on a JSONL file")
    parser.add_argument("--model", "-m", help="base model: built-in, alias, local dir, hub id")
    parser.add_argument("--training_file", "--training-file", "-t", type=Path)
    parser.add_argument("--validation_file", "--validation-file", "-v", type=Path, default=None)
    parser.add_argument("--spec", type=Path, default=None, help="a TrainSpec JSON file instead of the flags")
    parser.add_argument("--output_dir", "--output-dir", "-o", type=Path, default=Path("tuneforge-output"))
    parser.add_argument("--method", choices=list(METHODS), default="supervised", help="the training method")
    parser.add_argument(
        "--grader", type=Path, default=None, help="reinforcement: a grader JSON file, as the API takes it"
    )
    for name, info in _hyperparameter_fields().items():
        parser.add_argument(
            f"--{name}", f"--{name.replace('_', '-')}", default=None, help=f"default: {info.default}"
        )
    parser.add_argument(
        "--compute_classification_metrics", "--compute-classification-metrics", action="store_true"
    )
    parser.add_argument("--classification_n_classes", "--classification-n-classes", type=int, default=None)
    parser.add_argument("--classification_positive_class", "--classification-positive-class", default=None)
    parser.add_argument("--classification_betas", "--classification-betas", type=float, nargs="+", default=[])
    parser.add_argument(
        "--tuning", choices=["auto", "lora", "full"], default="auto", help="which weights train"
    )
    parser.add_argument("--lora_r", "--lora-r", type=int, default=None)
    parser.add_argument("--lora_alpha", "--lora-alpha", type=int, default=None)
    parser.add_argument("--lora_dropout", "--lora-dropout", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None, help="default: random, recorded in the manifest")
    parser.add_argument("--suffix", default=None, help="recorded in the manifest (model naming)")
    parser.add_argument("--checkpoint-every", "--checkpoint_every", type=int, default=None, help="steps")
    parser.add_argument("--eval-every", "--eval_every", type=int, default=None, help="steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="continue from the last resume state, if any")
    parser.add_argument(
        "--events",
        choices=["bar", "jsonl"],
        default="bar",
        help="jsonl: one JSON event per line on stdout, no progress bar",
    )
    add_data_dir(parser)
    parser.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    job = train_job(args)
    settings = settings_from(args)
    if args.events == "jsonl":
        from tuneforge.training import child
        from tuneforge.training.events import JsonlSink

        with scorer.for_job(job, settings) as grader_scorer:
            return int(child.run(job, settings, JsonlSink(sys.stdout), scorer=grader_scorer))
    from tuneforge.training.recipe import train

    with _ProgressSink() as sink, scorer.for_job(job, settings) as grader_scorer:
        result = train(job, settings, sink, scorer=grader_scorer)
    print(f"Fine-tuned model written to {result.output_dir} (step {result.step}).")
    for key, value in result.metrics.items():
        if key not in ("step", "elapsed_tokens", "elapsed_examples"):
            print(f"  {key}: {value:.4f}")
    return 0


def train_job(args: argparse.Namespace) -> TrainJob:
    """The run the flags describe; a bad value is an error naming its flag."""
    spec = _spec_from_file(args.spec) if args.spec else _spec_from_flags(args)
    return TrainJob.local(
        spec,
        args.output_dir,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        threads=args.threads,
    )


def _hyperparameter_fields() -> dict[str, Any]:
    """Every method's hyperparameters, each flag once (methods share most of them)."""
    fields: dict[str, Any] = {}
    for hyperparameters in METHODS.values():
        fields.update(hyperparameters.model_fields)
    return fields


def _spec_from_file(path: Path) -> TrainSpec:
    try:
        return TrainSpec.model_validate_json(path.read_text())
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the spec file {path}: {exc.strerror}", param="--spec") from exc
    except ValidationError as exc:
        raise _flag_error(exc, prefix=f"{path}: ") from exc


def _spec_from_flags(args: argparse.Namespace) -> TrainSpec:
    for flag in ("model", "training_file"):
        if getattr(args, flag) is None:
            raise InvalidRequest(f"--{flag} is required (or give --spec FILE)", param=f"--{flag}")
    fields = METHODS[args.method].model_fields
    for name in _hyperparameter_fields():
        if name not in fields and getattr(args, name) is not None:
            raise InvalidRequest(
                f"--{name} is not a hyperparameter of --method {args.method}", param=f"--{name}"
            )
    hyperparameters = {name: getattr(args, name) for name in fields}
    method: dict[str, Any] = {"type": args.method, "hyperparameters": hyperparameters}
    if args.method == "reinforcement":
        method["grader"] = _grader_from_file(args.grader)
    elif args.grader is not None:
        raise InvalidRequest("--grader is for --method reinforcement", param="--grader")
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout}
    classification = None
    if args.compute_classification_metrics:
        classification = {
            "n_classes": args.classification_n_classes,
            "positive_class": args.classification_positive_class,
            "betas": args.classification_betas,
        }
    try:
        return TrainSpec.model_validate(
            {
                "model": args.model,
                "training_file": str(args.training_file),
                "validation_file": str(args.validation_file) if args.validation_file else None,
                "method": method,
                "tuning": args.tuning,
                "lora": {k: v for k, v in lora.items() if v is not None},
                "classification": classification,
                "seed": args.seed,
                "suffix": args.suffix,
            }
        )
    except ValidationError as exc:
        raise _flag_error(exc) from exc


def _grader_from_file(path: Path | None) -> dict[str, Any]:
    """The grader JSON, once it is known to run (what the API checks at job creation, but the fields of
    the data, which a sample lacking one reports as a warning while training)."""
    if path is None:
        raise InvalidRequest("--method reinforcement needs --grader FILE.json", param="--grader")
    try:
        grader = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the grader file {path}: {exc.strerror}", param="--grader") from exc
    except ValueError as exc:
        raise InvalidRequest(f"{path}: not JSON ({exc})", param="--grader") from exc
    try:
        graders.validate(TypeAdapter(graders.Grader).validate_python(grader))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{path}: {where}: {first['msg']}", param="--grader") from exc
    except InvalidGrader as exc:
        raise InvalidRequest(f"{path}: {exc.message} ({exc.param})", param="--grader") from exc
    assert isinstance(grader, dict)  # the grader models accept nothing else
    return grader


def _flag_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    first = exc.errors()[0]
    # The location ends in the union member that failed ("constrained-int"); the flag is the field before.
    names = {*TrainSpec.model_fields, *_hyperparameter_fields(), "r", "alpha", "dropout", "n_classes"}
    field = next((str(part) for part in reversed(first["loc"]) if part in names), str(first["loc"][-1]))
    for group in ("lora", "classification"):  # their flags carry the group's name: --lora_r
        if group in first["loc"] and field != group:
            field = f"{group}_{field}"
    return InvalidRequest(f"{prefix}--{field}: {first['msg']}", param=f"--{field}")


class _ProgressSink:
    """A live bar (step, loss, real tokens/s, time left) plus messages, for people at a terminal."""

    def __enter__(self) -> _ProgressSink:
        self.progress, self.task = start_step_bar()
        self.first: tuple[float, float] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def emit(self, event: Any) -> None:
        from tuneforge.training.events import (
            CheckpointEvent,
            HyperparametersEvent,
            MessageEvent,
            MetricsEvent,
        )

        if isinstance(event, HyperparametersEvent):
            self.progress.update(self.task, total=event.resolved.total_steps)
        elif isinstance(event, MetricsEvent):
            self._advance(event.row)
        elif isinstance(event, MessageEvent):
            self.progress.console.print(f"{event.level}: {event.message}", markup=False, highlight=False)
        elif isinstance(event, CheckpointEvent):
            self.progress.console.print(f"checkpoint at step {event.step}: {event.path}", markup=False)

    def _advance(self, row: dict[str, float]) -> None:
        now, tokens = time.monotonic(), row["elapsed_tokens"]
        if self.first is None:  # rate from the first step on: loading and set-up are not training
            self.first = (now, tokens)
        rate = (tokens - self.first[1]) / max(1e-9, now - self.first[0])
        info = f"loss {row.get('training_loss', float('nan')):.3f}  {rate:,.0f} tok/s"
        if "validation_loss" in row:
            info += f"  val {row['validation_loss']:.3f}"
        self.progress.update(self.task, completed=int(row["step"]), info=info)

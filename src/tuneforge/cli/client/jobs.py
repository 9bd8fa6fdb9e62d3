"""`tuneforge api fine_tuning.jobs.*`: today's fine-tuning API, with the same upload and follow as
fine_tunes.create."""

from __future__ import annotations

import argparse
from typing import Any

from tuneforge.cli.client.connection import client_from, show
from tuneforge.cli.client.follow import follow_job
from tuneforge.cli.client.uploads import file_id_for
from tuneforge.errors import TrainingFailed


def register(verbs: Any) -> None:
    create = verbs.add_parser(
        "fine_tuning.jobs.create", help="upload data, create a fine-tuning job, follow it"
    )
    create.add_argument("-t", "--training_file", required=True, help="a local JSONL file or a file id")
    create.add_argument("-v", "--validation_file", default=None, help="a local JSONL file or a file id")
    create.add_argument("-m", "--model", required=True, help="base or fine-tuned model")
    create.add_argument(
        "--method",
        choices=("supervised", "dpo", "reinforcement"),
        default=None,
        help="the training method (default: supervised); a reinforcement job needs a grader (use the SDK)",
    )
    create.add_argument("--suffix", default=None)
    create.add_argument("--n_epochs", type=int, default=None)
    create.add_argument("--batch_size", type=int, default=None)
    create.add_argument("--learning_rate_multiplier", type=float, default=None)
    create.add_argument("--seed", type=int, default=None)
    create.add_argument("--no_follow", action="store_true", help="return once created")
    create.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="queue nothing: show the resolved hyperparameters with reasons, steps, tokens, and the time "
        "and memory the server estimates (the files are still uploaded, for the server to read them)",
    )
    create.set_defaults(handler=create_job)
    listing = verbs.add_parser("fine_tuning.jobs.list", help="list fine-tuning jobs, newest first")
    listing.add_argument("--limit", type=int, default=None)
    listing.add_argument("--after", default=None, help="the last job id of the previous page")
    listing.set_defaults(handler=list_jobs)
    for name, handler, what in (
        ("fine_tuning.jobs.get", get, "show a fine-tuning job"),
        ("fine_tuning.jobs.cancel", cancel, "cancel a fine-tuning job"),
        ("fine_tuning.jobs.follow", follow, "follow a job's events and progress until it ends"),
        ("fine_tuning.jobs.events", events, "list a job's events, newest first"),
    ):
        parser = verbs.add_parser(name, help=what)
        parser.add_argument("-i", "--id", required=True, help="the job id (ftjob-…)")
        if name.endswith("events"):
            parser.add_argument("--limit", type=int, default=None)
            parser.add_argument("--after", default=None)
        parser.set_defaults(handler=handler)


def create_job(args: argparse.Namespace) -> int:
    client = client_from(args)
    chosen = {"n_epochs": args.n_epochs, "batch_size": args.batch_size}
    chosen["learning_rate_multiplier"] = args.learning_rate_multiplier
    body = {
        "training_file": file_id_for(client, args.training_file, "training_file"),
        "validation_file": file_id_for(client, args.validation_file, "validation_file")
        if args.validation_file
        else None,
        "model": args.model,
        "suffix": args.suffix,
        "seed": args.seed,
        "hyperparameters": {key: value for key, value in chosen.items() if value is not None} or None,
    }
    if args.method:
        body["method"] = {"type": args.method}
    if args.dry_run:
        print(preflight_summary(client.post("fine_tuning/jobs/preflight", body)))
        return 0
    job = client.post("fine_tuning/jobs", body)
    print(f"Created fine-tuning job: {job['id']}")
    if args.no_follow:
        print(f"Follow it with: tuneforge api fine_tuning.jobs.follow -i {job['id']}")
        return 0
    return _follow_and_report(args, job["id"])


SOURCES = {
    "run": "at the pace of an earlier run on the server",
    "warm-up": "at the pace of a warm-up of real steps on the server",
    "flops": "from model FLOPs: nothing measured yet",
}


def preflight_summary(answer: dict[str, Any]) -> str:
    """The preflight as a person reads it: each value (and why, where "auto" chose it), then the work
    and what it costs."""
    hp, estimate = answer["hyperparameters"], answer["estimate"]
    reasons = hp.get("reasons") or {}
    lines = ["Dry run: nothing was queued.", "Hyperparameters:"]
    for key in ("tuning", "n_epochs", "batch_size", "learning_rate_multiplier", "beta"):
        if hp.get(key) is not None:
            lines.append(f"  {key} = {hp[key]}" + (f"  (auto: {reasons[key]})" if key in reasons else ""))
    lines.append(f"  learning_rate = {hp['learning_rate']:.3g}, warmup_steps = {hp['warmup_steps']}")
    lines.append(
        f"Data: {answer['n_train_examples']:,} training examples ({answer['data_format']}), "
        f"{answer['n_validation_examples']:,} validation"
    )
    lines.append(
        f"Steps: {answer['steps_per_epoch']:,} per epoch, {answer['total_steps']:,} in all; trained tokens: "
        f"{answer['trained_tokens_per_epoch']:,} per epoch, {answer['trained_tokens']:,} in all"
    )
    lines.append(
        f"Model: {answer['n_parameters'] / 1e6:.2f}M parameters, "
        f"{answer['trainable_parameters'] / 1e6:.2f}M trainable"
    )
    memory = f"peak memory {estimate['peak_cpu_bytes'] / 2**30:.2f} GiB"
    if estimate.get("peak_gpu_bytes") is not None:
        memory += f", GPU {estimate['peak_gpu_bytes'] / 2**30:.2f} GiB"
    lines.append(
        f"Estimate: {_duration(estimate['seconds'])} of training on {estimate['device']} "
        f"({SOURCES.get(estimate['calibration'], estimate['calibration'])}); {memory}"
    )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} minutes" if seconds < 5400 else f"{seconds / 3600:.1f} hours"


def follow(args: argparse.Namespace) -> int:
    return _follow_and_report(args, args.id)


def _follow_and_report(args: argparse.Namespace, job_id: str) -> int:
    try:
        job = follow_job(client_from(args), job_id)
    except KeyboardInterrupt:
        print(f"\nStopped following. Resume with: tuneforge api fine_tuning.jobs.follow -i {job_id}")
        return 130
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        reason = f": {error['message']}" if error.get("message") else ""
        raise TrainingFailed(f"Fine-tuning job {job_id} {job['status']}{reason}")
    print(f"\nJob complete! Fine-tuned model: {job['fine_tuned_model']}")
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    show(client_from(args).get("fine_tuning/jobs", limit=args.limit, after=args.after))
    return 0


def get(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"fine_tuning/jobs/{args.id}"))
    return 0


def cancel(args: argparse.Namespace) -> int:
    show(client_from(args).post(f"fine_tuning/jobs/{args.id}/cancel"))
    return 0


def events(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"fine_tuning/jobs/{args.id}/events", limit=args.limit, after=args.after))
    return 0

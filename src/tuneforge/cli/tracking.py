"""`tuneforge wandb sync` and `tuneforge mlflow sync`: log finished jobs as runs (once each, unless
`--force`); and `fine_tunes.plot` / `fine_tuning.jobs.plot` for `tuneforge api`, which fetch a job's
curves PNG from a running server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tuneforge.cli.common import add_data_dir, settings_from


def register(subparsers: Any) -> None:
    wandb = subparsers.add_parser("wandb", help="Weights & Biases: log finished jobs as runs")
    wandb_sync = wandb.add_subparsers(dest="verb", metavar="VERB", required=True).add_parser(
        "sync", help="log each finished job (config, every results row, summary, files) as a W&B run"
    )
    wandb_sync.add_argument("--project", default=None, help="W&B project (default: tuneforge)")
    wandb_sync.add_argument("--entity", default=None, help="W&B entity (team or user)")
    _sync_arguments(wandb_sync, "wandb")

    mlflow = subparsers.add_parser("mlflow", help="MLflow: log finished jobs as runs")
    mlflow_sync = mlflow.add_subparsers(dest="verb", metavar="VERB", required=True).add_parser(
        "sync", help="log each finished job (params, per-step metrics, results, model) as an MLflow run"
    )
    mlflow_sync.add_argument("--experiment", default=None, help="MLflow experiment (default: tuneforge)")
    _sync_arguments(mlflow_sync, "mlflow")


def _sync_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("-i", "--id", default=None, help="only this job (ftjob-… or ft-…)")
    parser.add_argument("--force", action="store_true", help="log jobs again even if already synced")
    add_data_dir(parser)
    parser.set_defaults(handler=run_sync, tracker=kind)


def run_sync(args: argparse.Namespace) -> int:
    from tuneforge.tracking.sync import Synced, sync_jobs

    settings = settings_from(args)
    if args.tracker == "wandb":
        options = {"project": args.project, "entity": args.entity}
    else:
        options = {"experiment_name": args.experiment}

    def report(item: Synced) -> None:
        if item.skipped:
            print(f"{item.job_id}: already synced (run {item.where.get('run_id')}); --force logs it again")
        else:
            where = item.where.get("url") or item.where.get("dir") or item.where.get("tracking_uri")
            print(f"{item.job_id}: logged as run {item.where.get('run_id')} ({where})")

    done = sync_jobs(
        settings, args.tracker, job_id=args.id, options=options, force=args.force, progress=report
    )
    if not done:
        print("No finished jobs to sync.")
    return 0


def add_plot_commands(verbs: Any) -> None:
    """`tuneforge api fine_tunes.plot -i ID -o FILE` (and `fine_tuning.jobs.plot`); `verbs` is the `api`
    command's subparsers, so the server flags (--api-base, --api-key) come from there."""
    for name, what in (("fine_tunes.plot", "fine-tune (ft-…)"), ("fine_tuning.jobs.plot", "job (ftjob-…)")):
        parser = verbs.add_parser(name, help=f"save a {what}'s loss and accuracy curves as a PNG")
        parser.add_argument("-i", "--id", required=True, help=f"the {what} id")
        parser.add_argument("-o", "--output", type=Path, default=None, help="PNG file (default: <ID>.png)")
        parser.set_defaults(handler=plot)


def plot(args: argparse.Namespace) -> int:
    from tuneforge.cli.client.connection import client_from

    legacy = args.id.startswith("ft-")
    path = f"fine-tunes/{args.id}/curves.png" if legacy else f"fine_tuning/jobs/{args.id}/curves.png"
    png = client_from(args).content(path)
    output: Path = args.output or Path(f"{args.id}.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(png)
    print(f"Curves written to {output}")
    return 0

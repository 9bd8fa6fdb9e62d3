"""`tuneforge wandb sync` and `tuneforge mlflow sync`: log finished jobs as runs (once each, unless
`--force`); and `fine_tunes.plot` / `fine_tuning.jobs.plot` for `tuneforge api`, which fetch a job's
curves PNG from a running server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tuneforge.cli.common import add_data_dir, settings_from
from tuneforge.errors import Unauthorized
from tuneforge.settings import Settings


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
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--org", action="append", default=None, metavar="ORG",
        help="this organisation's jobs (repeatable; default: the organisation of the CLI's API key)",
    )  # fmt: skip
    scope.add_argument(
        "-k", "--api-key", dest="api_key", default=None,
        help="the jobs this API key sees, as the legacy `openai wandb sync` did",
    )  # fmt: skip
    scope.add_argument("--all-orgs", action="store_true", help="every organisation's jobs")
    add_data_dir(parser)
    parser.set_defaults(handler=run_sync, tracker=kind)


def sync_scope(args: argparse.Namespace, settings: Settings) -> list[str] | None:
    """Whose jobs to sync (None: everyone's), always said out loud: --org, --api-key's organisation,
    --all-orgs, else the organisation of the key the client commands use (the one `serve` wrote)."""
    from tuneforge.tracking.sync import owner_of_key

    if args.all_orgs:
        return None
    if args.org:
        return list(args.org)
    secret = args.api_key or settings.client_api_key()
    owner = owner_of_key(settings, secret)
    if owner is None and args.api_key:
        raise Unauthorized(f"The API key ...{secret[-4:]} is not a key of the server at {settings.data_dir}")
    return [owner or settings.organization]


def run_sync(args: argparse.Namespace) -> int:
    from tuneforge.tracking.sync import Synced, count_finished, sync_jobs

    settings = settings_from(args)
    if args.tracker == "wandb":
        options = {"project": args.project, "entity": args.entity}
    else:
        options = {"experiment_name": args.experiment}
    owners = sync_scope(args, settings)
    where = "every organisation" if owners is None else "organisation " + ", ".join(owners)

    def report(item: Synced) -> None:
        if item.skipped:
            print(f"{item.job_id}: already synced (run {item.where.get('run_id')}); --force logs it again")
        else:
            where = item.where.get("url") or item.where.get("dir") or item.where.get("tracking_uri")
            print(f"{item.job_id} ({item.owner}): logged as run {item.where.get('run_id')} ({where})")

    done = sync_jobs(
        settings,
        args.tracker,
        owners=owners,
        job_id=args.id,
        options=options,
        force=args.force,
        progress=report,
    )
    if not done:
        others = count_finished(settings, owners=None) if owners is not None else 0
        hint = f"; {others} in other organisations (--org ORG or --all-orgs)" if others else ""
        print(f"No finished jobs to sync in {where}{hint}.")
    else:
        print(f"Synced the finished jobs of {where}.")
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

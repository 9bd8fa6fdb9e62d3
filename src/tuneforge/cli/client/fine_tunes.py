"""`tuneforge api fine_tunes.*`: the legacy fine-tunes commands, spelt and behaving as in `openai api`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tuneforge.cli.client.connection import client_from, show
from tuneforge.cli.client.follow import follow_fine_tune
from tuneforge.cli.client.http import ApiClient
from tuneforge.cli.client.uploads import file_id_for
from tuneforge.errors import InvalidRequest, TrainingFailed

HYPERPARAMETERS = (
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "prompt_loss_weight",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
)


def register(verbs: Any) -> None:
    create = verbs.add_parser("fine_tunes.create", help="upload data, create a fine-tune and follow it")
    add_create_arguments(create)
    create.set_defaults(handler=create_fine_tune)
    for name, handler, what in (
        ("fine_tunes.follow", follow, "stream a fine-tune's events and progress until it ends"),
        ("fine_tunes.get", get, "show a fine-tune"),
        ("fine_tunes.results", results, "print a fine-tune's results CSV"),
        ("fine_tunes.events", events, "list a fine-tune's events"),
        ("fine_tunes.cancel", cancel, "cancel a fine-tune"),
        ("fine_tunes.delete", delete, "delete a fine-tune's fine-tuned model"),
    ):
        parser = verbs.add_parser(name, help=what)
        parser.add_argument("-i", "--id", required=True, help="the fine-tune id (ft-…)")
        parser.set_defaults(handler=handler)
    verbs.add_parser("fine_tunes.list", help="list fine-tunes").set_defaults(handler=list_fine_tunes)


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--training_file", required=True, help="a local JSONL file or a file id")
    parser.add_argument("-v", "--validation_file", default=None, help="a local JSONL file or a file id")
    parser.add_argument("-m", "--model", default=None, help="base or fine-tuned model (server default: tiny)")
    parser.add_argument("--suffix", default=None, help="up to 40 characters added to the model's name")
    parser.add_argument("--n_epochs", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--learning_rate_multiplier", type=float, default=None)
    parser.add_argument("--prompt_loss_weight", type=float, default=None)
    parser.add_argument("--compute_classification_metrics", action="store_true")
    parser.add_argument("--classification_n_classes", type=int, default=None)
    parser.add_argument("--classification_positive_class", default=None)
    parser.add_argument("--classification_betas", type=float, nargs="+", default=None)
    parser.add_argument("--no_follow", action="store_true", help="return once created; follow it later")


def create_fine_tune(args: argparse.Namespace) -> int:
    client = client_from(args)
    fine_tune = submit(client, args)
    print(f"Created fine-tune: {fine_tune['id']}")
    if args.no_follow:
        print(f"Follow it with: tuneforge api fine_tunes.follow -i {fine_tune['id']}")
        return 0
    return _follow_and_report(client, fine_tune["id"])


def submit(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    """Upload (or reuse) the files named by `args`, then create the fine-tune; shared with the quickstart."""
    body: dict[str, Any] = {
        "training_file": file_id_for(client, args.training_file, "training_file"),
        "validation_file": file_id_for(client, args.validation_file, "validation_file")
        if args.validation_file
        else None,
        "model": args.model,
        "suffix": args.suffix,
        **{key: getattr(args, key) for key in HYPERPARAMETERS},
    }
    if args.compute_classification_metrics:
        body["compute_classification_metrics"] = True
    result: dict[str, Any] = client.post("fine-tunes", body)
    return result


def follow(args: argparse.Namespace) -> int:
    return _follow_and_report(client_from(args), args.id)


def _follow_and_report(client: ApiClient, fine_tune_id: str) -> int:
    print("Streaming events until the fine-tune is complete... (Ctrl-C stops following, not the fine-tune)")
    try:
        fine_tune = follow_fine_tune(client, fine_tune_id)
    except KeyboardInterrupt:
        print(f"\nStopped following. Resume with: tuneforge api fine_tunes.follow -i {fine_tune_id}")
        return 130
    report_outcome(fine_tune)
    return 0


def report_outcome(fine_tune: dict[str, Any]) -> None:
    """Success prints how to use the model; failure and cancellation raise, so the exit code says so."""
    status = fine_tune["status"]
    if status == "succeeded":
        model = fine_tune["fine_tuned_model"]
        print(f"\nJob complete! Status: succeeded\nFine-tuned model: {model}")
        print(f'Try it: tuneforge api completions.create -m "{model}" -p "<YOUR_PROMPT>"')
        return
    last = [e["message"] for e in fine_tune.get("events") or [] if e.get("level") == "error"]
    reason = f": {last[-1]}" if last else ""
    raise TrainingFailed(f"Fine-tune {fine_tune['id']} {status}{reason}")


def list_fine_tunes(args: argparse.Namespace) -> int:
    show(client_from(args).get("fine-tunes"))
    return 0


def get(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"fine-tunes/{args.id}"))
    return 0


def results(args: argparse.Namespace) -> int:
    client = client_from(args)
    sys.stdout.write(results_csv(client, args.id))
    return 0


def results_csv(client: ApiClient, fine_tune_id: str) -> str:
    fine_tune = client.get(f"fine-tunes/{fine_tune_id}")
    files = fine_tune.get("result_files") or []
    if not files:
        raise InvalidRequest(
            f"Fine-tune {fine_tune_id} has no results file yet (status: {fine_tune['status']}); "
            "it is written when the fine-tune succeeds",
            param="id",
        )
    return client.content(f"files/{files[0]['id']}/content").decode("utf-8")


def events(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"fine-tunes/{args.id}/events"))
    return 0


def cancel(args: argparse.Namespace) -> int:
    show(client_from(args).post(f"fine-tunes/{args.id}/cancel"))
    return 0


def delete(args: argparse.Namespace) -> int:
    """OpenAI's legacy CLI deleted a fine-tune's model by its name; this takes the fine-tune's id."""
    client = client_from(args)
    fine_tune = client.get(f"fine-tunes/{args.id}")
    model = fine_tune.get("fine_tuned_model")
    if not model:
        raise InvalidRequest(
            f"Fine-tune {args.id} has no fine-tuned model to delete (status: {fine_tune['status']})",
            param="id",
        )
    show(client.delete(f"models/{model}"))
    return 0

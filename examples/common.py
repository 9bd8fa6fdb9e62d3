"""What the examples share: connecting to a server, fine-tuning on in-memory records (uploaded as JSONL,
followed until done), and turning a completion's top logprobs into class probabilities."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.cli.client.fine_tunes import report_outcome
from tuneforge.cli.client.follow import follow_fine_tune, follow_job
from tuneforge.cli.client.http import ApiClient
from tuneforge.cli.client.uploads import upload_or_reuse
from tuneforge.errors import TuneforgeError
from tuneforge.settings import load_settings

Record = dict[str, Any]


def arguments(description: str, *, examples: int, epochs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "-b", "--api-base", default=None, help="default: $TUNEFORGE_API_BASE, $OPENAI_BASE_URL"
    )
    parser.add_argument("-k", "--api-key", default=None, help="default: $TUNEFORGE_API_KEY, $OPENAI_API_KEY")
    parser.add_argument("--model", default="tiny", help="base model (default: the built-in tiny)")
    parser.add_argument("--examples", type=int, default=examples, help="records to generate")
    parser.add_argument("--n_epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    return parser.parse_args()


def connect(args: argparse.Namespace) -> ApiClient:
    settings = load_settings(api_base=args.api_base, api_key=args.api_key)
    return ApiClient(settings.client_api_base(), settings.client_api_key())


def split(rows: list[Record], held_out: float = 0.2) -> tuple[list[Record], list[Record]]:
    cut = len(rows) - max(2, round(held_out * len(rows)))
    return rows[:cut], rows[cut:]


def upload(client: ApiClient, name: str, rows: list[Record]) -> str:
    path = Path(tempfile.mkdtemp()) / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return upload_or_reuse(client, path)


def fine_tune(client: ApiClient, name: str, train: list[Record], valid: list[Record], **options: Any) -> str:
    """A legacy fine-tune (the API with classification metrics), followed to the end; its model name."""
    body = {"training_file": upload(client, f"{name}_train", train), **options}
    if valid:
        body["validation_file"] = upload(client, f"{name}_valid", valid)
    created = client.post("fine-tunes", body)
    finished = follow_fine_tune(client, created["id"])
    report_outcome(finished)
    return str(finished["fine_tuned_model"])


def fine_tuning_job(
    client: ApiClient,
    name: str,
    train: list[Record],
    model: str,
    *,
    valid: list[Record] | None = None,
    method: str = "supervised",
    grader: dict[str, Any] | None = None,
    **hyperparameters: Any,
) -> str:
    """The same through today's jobs API (chat, preference and reinforcement data); `method` is
    "supervised", "dpo" or "reinforcement" (which needs a `grader`)."""
    body: dict[str, Any] = {"training_file": upload(client, f"{name}_train", train), "model": model}
    if valid:
        body["validation_file"] = upload(client, f"{name}_valid", valid)
    body["method"] = {"type": method, method: {"hyperparameters": hyperparameters}}
    if grader is not None:
        body["method"][method]["grader"] = grader
    created = client.post("fine_tuning/jobs", body)
    job = follow_job(client, created["id"])
    if job["status"] != "succeeded":
        raise SystemExit(f"fine-tuning job {job['id']} {job['status']}: {job.get('error')}")
    return str(job["fine_tuned_model"])


def class_probabilities(choice: Record, labels: list[str]) -> dict[str, float]:
    """P(label) from the first generated token's top logprobs: a token counts for the one label it begins
    (labels carry their leading space, as trained)."""
    top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
    mass = dict.fromkeys(labels, 0.0)
    for token, logprob in top.items():
        owners = [label for label in labels if token and label.startswith(token)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(logprob)
    total = sum(mass.values()) or 1.0
    return {label: value / total for label, value in mass.items()}


def classify(client: ApiClient, model: str, prompts: list[str], labels: list[str]) -> list[dict[str, float]]:
    """One token per prompt with its top logprobs, in batches: the guide's way to classify."""
    results: list[dict[str, float]] = []
    for start in range(0, len(prompts), 32):
        body = {
            "model": model,
            "prompt": prompts[start : start + 32],
            "max_tokens": 1,
            "logprobs": 5,
            "temperature": 0,
        }
        choices = sorted(client.post("completions", body)["choices"], key=lambda choice: choice["index"])
        results += [class_probabilities(choice, labels) for choice in choices]
    return results


def metric(name: str, value: float, detail: str = "") -> None:
    """The last line of every example: what tests and people read."""
    print(f"\nmetric {name}={value:.3f}" + (f"  ({detail})" if detail else ""))


def run(main: Callable[[], None]) -> None:
    """Run an example's main; a server's refusal or absence ends it with one line, not a traceback."""
    try:
        main()
    except TuneforgeError as exc:
        sys.exit(f"Error: {exc.message}")

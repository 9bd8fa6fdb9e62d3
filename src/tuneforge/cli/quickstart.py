"""`tuneforge quickstart`: the whole product in a few minutes, offline and on a CPU. It starts a server (or
uses --api-base), prepares a shipped review dataset, fine-tunes the built-in model with classification
metrics, follows it, and reports the results table, held-out accuracy through /v1/completions, example
predictions with class probabilities, and where the model, results CSV and curves PNG are."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.cli.client.connection import client_from
from tuneforge.cli.client.http import ApiClient
from tuneforge.errors import TuneforgeError
from tuneforge.settings import load_settings

POSITIVE = " positive"  # prepare adds the leading space the tokenizer joins with the next letter
# 20% held out; prepare keeps 80% of the rest to train on. "auto" epochs give the built-in at least 300 steps
# (3 epochs, about 120 steps, left it at chance on some data orders): a minute and a half on 2 cores.
DEFAULT_EXAMPLES = 600
HELD_OUT = 0.2
EVAL_BATCH = 32  # prompts per /v1/completions call
SERVER_START_S = 90.0
FINAL_COLUMNS = (
    "training_loss",
    "validation_loss",
    "validation_token_accuracy",
    "classification/accuracy",
    "classification/precision",
    "classification/recall",
    "classification/f1.0",
    "classification/auroc",
)


class QuickstartFailed(TuneforgeError):
    """A step of the quickstart did not work; the message says which."""

    default_code = "quickstart_failed"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="prepare, fine-tune and evaluate a sample classifier end to end (a few minutes)"
    )
    parser.add_argument("--model", default="tiny", help="base model (default: the built-in tiny)")
    parser.add_argument(
        "--workdir", type=Path, default=Path("tuneforge-quickstart"), help="where data and outputs go"
    )
    parser.add_argument(
        "--examples", type=int, default=DEFAULT_EXAMPLES, help="reviews to generate (fewer: faster)"
    )
    parser.add_argument(
        "--n_epochs", "--n-epochs", type=int, default=None, help="epochs to fine-tune (default: auto)"
    )
    parser.add_argument(
        "--learning_rate_multiplier", "--learning-rate-multiplier", type=float, default=0.3
    )  # the built-in learns from nothing: larger steps than OpenAI's 0.1 (89-91% held out at 0.3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated dataset")
    parser.add_argument(
        "-b", "--api-base", dest="api_base", default=None, help="use this server instead of starting one"
    )
    parser.add_argument("-k", "--api-key", dest="api_key", default=None)
    parser.set_defaults(handler=run_quickstart)


@dataclass
class Prepared:
    train: Path
    valid: Path
    separator: str
    held_out: list[tuple[str, str]]  # (review, label) pairs the fine-tune never sees


def run_quickstart(args: argparse.Namespace) -> int:
    started = time.monotonic()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    server = None if args.api_base else LocalServer.start(workdir / "data")
    try:
        with failing("Connecting to the server"):
            client = _client(args, server)
        with failing("Preparing the data"):
            prepared = _prepare(args, workdir)
        with failing("The fine-tune"):
            fine_tune = _fine_tune(client, args, prepared)
        with failing("Reading the results"):
            results = _save_results(client, fine_tune, workdir)
        with failing("Evaluating through /v1/completions"):
            _print_examples(_evaluate(client, fine_tune["fine_tuned_model"], prepared))
        with failing("Fetching the curves"):
            curves = workdir / "curves.png"
            curves.write_bytes(client.content(f"fine-tunes/{fine_tune['id']}/curves.png"))
        _print_locations(fine_tune, results, curves, server)
    finally:
        if server is not None:
            server.stop()
    print(f"\nQuickstart finished in {time.monotonic() - started:.0f} s.")
    return 0


@contextlib.contextmanager
def failing(step: str) -> Iterator[None]:
    """Any error names the step it stopped, and exits non-zero."""
    try:
        yield
    except TuneforgeError as exc:
        raise QuickstartFailed(f"{step} failed: {exc.message}") from exc


def _client(args: argparse.Namespace, server: LocalServer | None) -> ApiClient:
    if server is not None:
        server.wait_until_healthy()
        return ApiClient(server.base, server.key())
    client = client_from(args)
    client.get("models")  # fail now, not after preparing the data, if the server or the key is wrong
    return client


class LocalServer:
    """`tuneforge serve` on a free loopback port with one embedded worker, logging to a file."""

    def __init__(self, data_dir: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.data_dir, self.port, self.process = data_dir, port, process
        self.base = f"http://127.0.0.1:{port}/v1"

    @classmethod
    def start(cls, data_dir: Path) -> LocalServer:
        data_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log = (data_dir.parent / "server.log").open("wb")
        command = [sys.executable, "-m", "tuneforge", "serve", "--port", str(port), "--workers", "1"]
        process = subprocess.Popen([*command, "--data-dir", str(data_dir)], stdout=log, stderr=log)
        _step(
            f"Started a tuneforge server on http://127.0.0.1:{port} (log: {data_dir.parent / 'server.log'})"
        )
        return cls(data_dir, port, process)

    def wait_until_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise QuickstartFailed(
                    f"The server exited with code {self.process.returncode}; see server.log"
                )
            try:
                if httpx.get(self.base.removesuffix("/v1") + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise QuickstartFailed(f"The server at {self.base} did not become healthy in {SERVER_START_S:.0f} s")

    def key(self) -> str:
        """The key `serve` wrote for the local CLI on its first start."""
        return load_settings(data_dir=self.data_dir).client_api_key()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


# --- data --------------------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace, workdir: Path) -> Prepared:
    """Write the raw reviews as a CSV, run `tuneforge prepare` on it, keep the held-out part aside."""
    from tuneforge.samples import reviews

    fine_tune_part, held_out = reviews.split(reviews.generate(args.examples, seed=args.seed), HELD_OUT)
    raw = workdir / "reviews.csv"
    with raw.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["prompt", "completion"])
        writer.writerows((review.text, review.label) for review in fine_tune_part)
    _step(f"Generated {len(fine_tune_part)} product reviews in {raw} ({len(held_out)} more held out)")
    for old in workdir.glob("reviews_prepared*.jsonl"):
        old.unlink()  # prepare never overwrites; a re-run starts from fresh files
    result = _run_prepare(raw, args.model, workdir)
    files = [workdir / name for name in result["files"]]
    if len(files) != 2:
        raise QuickstartFailed(f"prepare wrote {result['files']}, not a training and a validation file")
    held = [(review.text, review.label) for review in held_out]
    return Prepared(files[0], files[1], str(result["separator"]), held)


def _run_prepare(raw: Path, model: str, workdir: Path) -> dict[str, Any]:
    from tuneforge.cli.main import main

    _step(f"tuneforge prepare -f {raw.name} -q --model {model}")
    report = workdir / "prepare-report.json"
    argv = ["prepare", "-f", str(raw), "-q", "--model", model, "--json", str(report)]
    if main([*argv, "--data-dir", str(workdir / "data")]) != 0:
        raise QuickstartFailed(f"tuneforge prepare failed on {raw}")
    result: dict[str, Any] = json.loads(report.read_text())["result"]
    return result


# --- fine-tune ---------------------------------------------------------------------------------------


def _fine_tune(client: ApiClient, args: argparse.Namespace, prepared: Prepared) -> dict[str, Any]:
    from tuneforge.cli.client import fine_tunes
    from tuneforge.cli.client.follow import follow_fine_tune

    _step("Uploading and creating the fine-tune (legacy fine-tunes API, classification metrics on)")
    options = argparse.Namespace(
        training_file=str(prepared.train),
        validation_file=str(prepared.valid),
        model=args.model,
        suffix="quickstart",
        n_epochs=args.n_epochs,
        batch_size=None,
        learning_rate_multiplier=args.learning_rate_multiplier,
        prompt_loss_weight=None,
        compute_classification_metrics=True,
        classification_n_classes=None,
        classification_positive_class=POSITIVE,
        classification_betas=None,
    )
    created = fine_tunes.submit(client, options)
    print(f"Created fine-tune: {created['id']}")
    _step(
        f"Following {created['id']} (the same view as `tuneforge api fine_tunes.follow -i {created['id']}`)"
    )
    finished = follow_fine_tune(client, created["id"])
    fine_tunes.report_outcome(finished)
    return finished


# --- report ------------------------------------------------------------------------------------------


def _save_results(client: ApiClient, fine_tune: dict[str, Any], workdir: Path) -> Path:
    from tuneforge.cli.client.fine_tunes import results_csv

    results = workdir / "results.csv"
    results.write_text(results_csv(client, fine_tune["id"]), encoding="utf-8")
    _print_results_table(results)
    return results


def _print_results_table(results: Path) -> None:
    """The last value of each column: validation metrics are measured every few steps, not every step."""
    final: dict[str, str] = {}
    with results.open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            final.update({key: value for key, value in row.items() if value not in ("", None)})
    _step(f"Results (final values from {results.name}, step {final.get('step', '?')})")
    for column in FINAL_COLUMNS:
        if column in final:
            print(f"  {column:<28} {float(final[column]):.4f}")


@dataclass
class Prediction:
    text: str
    label: str
    probabilities: dict[str, float]  # class → probability of its first token, renormalised over classes

    @property
    def predicted(self) -> str | None:
        if not self.probabilities or max(self.probabilities.values()) == 0:
            return None
        return max(self.probabilities, key=lambda label: self.probabilities[label])


def _evaluate(client: ApiClient, model: str, prepared: Prepared) -> list[Prediction]:
    """Held-out accuracy the way the guide classifies: max_tokens=1, logprobs=5, read the class tokens."""
    labels = sorted({label for _, label in prepared.held_out})
    predictions: list[Prediction] = []
    for start in range(0, len(prepared.held_out), EVAL_BATCH):
        chunk = prepared.held_out[start : start + EVAL_BATCH]
        body = {
            "model": model,
            "prompt": [text + prepared.separator for text, _ in chunk],
            "max_tokens": 1,
            "logprobs": 5,
            "temperature": 0,
        }
        choices = sorted(client.post("completions", body)["choices"], key=lambda choice: choice["index"])
        for (text, label), choice in zip(chunk, choices, strict=True):
            predictions.append(Prediction(text, label, class_probabilities(choice, labels)))
    correct = sum(p.predicted == p.label for p in predictions)
    accuracy = correct / max(1, len(predictions))
    _step(
        f"Held-out accuracy through /v1/completions (max_tokens=1, logprobs=5): {accuracy:.1%} "
        f"({correct}/{len(predictions)}; chance is about 50%)"
    )
    if not predictions:
        raise QuickstartFailed("No held-out predictions came back from /v1/completions")
    return predictions


def class_probabilities(choice: dict[str, Any], labels: list[str]) -> dict[str, float]:
    """Each class's share of the first generated token: a top token counts for the one class whose
    label (with its leading space) it begins; a token that begins several labels tells them apart not."""
    logprobs = choice.get("logprobs") or {}
    tops = logprobs.get("top_logprobs") or [None]
    top: dict[str, float] = tops[0] or {}
    mass = {label: 0.0 for label in labels}
    for token, logprob in top.items():
        owners = [label for label in labels if token and f" {label}".startswith(token)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(logprob)
    total = sum(mass.values())
    return {label: value / total for label, value in mass.items()} if total else mass


def _print_examples(predictions: list[Prediction], count: int = 6) -> None:
    _step("Example predictions on held-out reviews")
    right = [p for p in predictions if p.predicted == p.label]
    wrong = [p for p in predictions if p.predicted != p.label]
    for prediction in right[: count - min(len(wrong), count // 2)] + wrong[: count // 2]:
        odds = ", ".join(f"P({label})={value:.2f}" for label, value in prediction.probabilities.items())
        mark = "ok " if prediction.predicted == prediction.label else "MISS"
        print(f"  [{mark}] {prediction.text[:70]!r}\n         true: {prediction.label:<9} {odds}")


def _print_locations(
    fine_tune: dict[str, Any], results: Path, curves: Path, server: LocalServer | None
) -> None:
    _step("Where things are")
    print(f"  fine-tuned model:  {fine_tune['fine_tuned_model']}")
    if server is not None:
        stored = server.data_dir / "blobs" / "jobs" / fine_tune["id"] / "output"
        if stored.is_dir():
            print(f"  model files:       {stored} (Hugging Face format)")
        print(f"  serve it again:    tuneforge serve --data-dir {server.data_dir}")
    print(f"  results CSV:       {results}")
    print(f"  loss/accuracy PNG: {curves}")

"""Follow a running fine-tune: its events as lines, its steps as a live progress bar, until it ends.

Legacy fine-tunes are followed through their event stream (server-sent events; `include_metrics` is a
tuneforge extension that adds the per-step rows the bar needs), fine-tuning jobs by polling their events.
Ctrl-C stops the following, never the job."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import datetime
from typing import Any

from tuneforge.cli.client.http import ApiClient, ServerFailed
from tuneforge.cli.progress import start_step_bar

FINAL = ("succeeded", "failed", "cancelled")
POLL_S = 1.0
MAX_RECONNECTS = 5  # a stream cut by a proxy or a server restart is picked up again this many times

_TOTAL_STEPS = re.compile(r"total_steps=(\d+)")
_STEP_ROW = re.compile(r"^Step (\d+)(?:: (.*))?$")  # the message of a metrics event
_SHOWN_METRICS = (
    ("training_loss", "loss"),
    ("validation_loss", "val loss"),
    ("classification/accuracy", "val acc"),
)


class ProgressView:
    """Event lines above a bar (step N/total, latest losses, time left), drawn with rich."""

    def __enter__(self) -> ProgressView:
        self.progress, self.task = start_step_bar()
        self.latest: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def message(self, created_at: int, text: str) -> None:
        stamp = datetime.fromtimestamp(created_at).strftime("%Y-%m-%d %H:%M:%S")
        # soft_wrap: a long line stays one line in a log file instead of breaking at 80 columns
        self.progress.console.print(f"[{stamp}] {text}", markup=False, highlight=False, soft_wrap=True)
        total = _TOTAL_STEPS.search(text)
        if total and text.startswith("Hyperparameters"):
            self.progress.update(self.task, total=int(total.group(1)))

    def metrics(self, row: dict[str, Any]) -> None:
        self.latest.update({k: float(v) for k, v in row.items() if isinstance(v, int | float)})
        info = "  ".join(
            f"{label} {self.latest[key]:.3f}" for key, label in _SHOWN_METRICS if key in self.latest
        )
        self.progress.update(self.task, completed=int(row.get("step", 0)), info=info)
        if not self.progress.console.is_terminal and "validation_loss" in row:
            # no live bar in a log file or pipe: a line at each evaluation shows the progress instead
            total = self.progress.tasks[0].total
            of = f"/{int(total)}" if total else ""
            self.progress.console.print(f"step {int(row.get('step', 0))}{of}  {info}", highlight=False)

    def legacy_event(self, event: dict[str, Any]) -> None:
        text = str(event.get("message", ""))
        step = _STEP_ROW.match(text)
        if step:
            self.metrics({"step": int(step.group(1)), **_pairs(step.group(2) or "")})
        else:
            self.message(int(event.get("created_at", 0)), text)

    def job_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "metrics" and isinstance(event.get("data"), dict):
            self.metrics(event["data"])
        else:
            self.message(int(event.get("created_at", 0)), str(event.get("message", "")))


def _pairs(text: str) -> dict[str, float]:
    """`training_loss=0.1234, validation_loss=0.2` as a dict; anything else is skipped."""
    values = {}
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def follow_fine_tune(client: ApiClient, fine_tune_id: str) -> dict[str, Any]:
    """Stream a legacy fine-tune's events until it ends; the fine-tune as it ended."""
    seen = 0
    with ProgressView() as view:
        for _ in range(MAX_RECONNECTS + 1):
            # A broken stream is retried; the status check below fails if the server itself is gone.
            with contextlib.suppress(ServerFailed):
                seen = _stream_once(client, fine_tune_id, view, seen)
            fine_tune: dict[str, Any] = client.get(f"fine-tunes/{fine_tune_id}")
            if fine_tune["status"] in FINAL:
                return fine_tune
    raise ServerFailed(f"The event stream of {fine_tune_id} kept breaking; run fine_tunes.follow again")


def _stream_once(client: ApiClient, fine_tune_id: str, view: ProgressView, seen: int) -> int:
    """Every event is replayed on reconnect, so the first `seen` are skipped."""
    params = {"stream": "true", "include_metrics": "true"}
    count = 0
    for event in client.events("GET", f"fine-tunes/{fine_tune_id}/events", params=params):
        count += 1
        if count > seen:
            view.legacy_event(event)
    return max(seen, count)


def follow_job(client: ApiClient, job_id: str) -> dict[str, Any]:
    """Poll a fine-tuning job's events (newest first on the wire) until the job ends."""
    seen: set[str] = set()
    with ProgressView() as view:
        while True:
            job: dict[str, Any] = client.get(f"fine_tuning/jobs/{job_id}")  # before the events: none missed
            page = client.get(f"fine_tuning/jobs/{job_id}/events", limit=100)["data"]
            fresh = [event for event in reversed(page) if event["id"] not in seen]
            for event in fresh:
                seen.add(event["id"])
                view.job_event(event)
            if job["status"] in FINAL and not fresh:
                return job
            time.sleep(POLL_S)

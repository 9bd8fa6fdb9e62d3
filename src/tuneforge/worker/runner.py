"""Run one claimed job: start the training child, turn its events into job events and checkpoints, keep
the heartbeat, and record the outcome (success in one transaction; a crash retried up to a bound)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge import ids
from tuneforge.settings import Settings
from tuneforge.store import events as event_store
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.store.tables import CheckpointRow, JobRow, ModelRow
from tuneforge.tracking.live import TrackerSet
from tuneforge.tracking.sync import finish_live
from tuneforge.worker.child import Child, ChildSpec, command, resource_environment

log = logging.getLogger(__name__)

BAD_INPUT_EXIT = 2  # the recipe's exit code for input that no retry can fix


@dataclass
class Outcome:
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    lost: bool = False  # the job stopped being ours (cancelled, or taken over after a stall)
    stopping: bool = False  # our own worker is shutting down
    seen_checkpoints: set[int] = field(default_factory=set)


class JobRunner:
    def __init__(self, settings: Settings, database: Database, blobs: BlobStore, worker_id: str) -> None:
        self.settings, self.database, self.blobs, self.worker_id = settings, database, blobs, worker_id

    def run(self, job: JobRow, should_stop: Any) -> None:
        """Run `job` to an outcome; `should_stop()` asks us to hand the job back (server shutdown)."""
        try:
            spec = self._spec(job)
            self.base_model = self._base_name(job)  # looked up once: names are fixed for the whole run
            self.model_name = _model_name(job, self.base_model)
        except Exception as exc:  # a model or file that vanished after create: no retry can help
            self._fail(job, {"code": "invalid_job", "message": str(exc), "param": None})
            return
        self._event(job.id, _start_message(job))
        self.trackers = TrackerSet.for_job(
            self.settings, job, lambda m: self._event(job.id, m, level="warning")
        )
        child = Child(
            command(spec, self.settings),
            self._job_dir(job) / "train.log",
            resource_environment(self.settings),
        )
        outcome = self._follow(job, child, should_stop)
        self._settle(job, child, outcome)
        finish_live(self.trackers, self.database, self.blobs, job.id)  # W&B / MLflow runs end as the job did

    def _spec(self, job: JobRow) -> ChildSpec:
        def local(file_id: str) -> Path:
            return self.blobs.local_path(f"files/{file_id}")

        return ChildSpec(
            model=self._model_source(job),
            training_file=local(job.training_file),
            validation_file=local(job.validation_file) if job.validation_file else None,
            output_dir=self._job_dir(job) / "output",
            hyperparameters=job.hyperparameters,
            seed=job.seed,
            suffix=job.suffix,
        )

    def _model_source(self, job: JobRow) -> str:
        with self.database.session() as session:
            key = model_store.usable_path(session, owner=job.owner, name=job.model)
        return str(self.blobs.local_path(key)) if key else job.model

    def _job_dir(self, job: JobRow) -> Path:
        return self.blobs.local_path(f"jobs/{job.id}")

    def _follow(self, job: JobRow, child: Child, should_stop: Any) -> Outcome:
        outcome = Outcome()
        last_beat = time.monotonic()
        while True:
            batch = list(child.next_events(timeout=self.settings.heartbeat_interval_s / 2))
            # Beat before recording a batch, so nothing is written for a job cancelled meanwhile.
            if batch or time.monotonic() - last_beat >= self.settings.heartbeat_interval_s:
                last_beat = time.monotonic()
                with self.database.session() as session:
                    outcome.lost = not job_store.heartbeat(session, job.id, self.worker_id)
            for event in batch if not outcome.lost else []:
                if event is None:
                    return outcome
                self._handle(job, event, outcome)
            if outcome.lost or should_stop():
                outcome.stopping = not outcome.lost
                child.stop()
                return outcome

    def _handle(self, job: JobRow, event: dict[str, Any], outcome: Outcome) -> None:
        kind = event.get("type")
        if kind == "metrics":
            data = event.get("data") or {}
            self._event(job.id, _metrics_message(data), type="metrics", data=data)
            self.trackers.metrics(data)
        elif kind == "hyperparameters":
            self._record_resolved(job, event.get("data") or {})
            self.trackers.hyperparameters(event.get("data") or {})
        elif kind == "checkpoint":
            self._record_checkpoint(job, event, outcome)
        elif kind == "done":
            outcome.done = event
        elif kind == "error":
            outcome.error = event
        else:
            level = "warn" if event.get("level") in ("warn", "warning") else "info"
            self._event(job.id, str(event.get("message", "")), level=level)

    def _record_resolved(self, job: JobRow, resolved: dict[str, Any]) -> None:
        estimate = resolved.get("estimated_seconds")
        finish = ids.now() + int(estimate) if isinstance(estimate, int | float) else None
        with self.database.session() as session:
            job_store.transition(
                session, job.id, from_statuses=("running",), resolved=resolved, estimated_finish=finish
            )
            shown = ", ".join(f"{k}={v}" for k, v in resolved.items())
            event_store.add_event(session, job.id, f"Hyperparameters: {shown}")

    def _record_checkpoint(self, job: JobRow, event: dict[str, Any], outcome: Outcome) -> None:
        step = int(event.get("step", 0))
        if step in outcome.seen_checkpoints:
            return
        outcome.seen_checkpoints.add(step)
        key = self._blob_key(Path(str(event["path"])))
        name = f"{self.model_name}:ckpt-step-{step}"
        with self.database.session() as session:
            if model_store.find_checkpoint(session, owner=job.owner, name=name) is None:
                model_store.add_checkpoint(
                    session,
                    CheckpointRow(
                        id=ids.new_id("ftckpt"),
                        job_id=job.id,
                        owner=job.owner,
                        step=step,
                        created_at=ids.now(),
                        model_name=name,
                        metrics=dict(event.get("metrics") or {}, step=step),
                        path=key,
                    ),
                )
            event_store.add_event(session, job.id, f"Checkpoint created at step {step}: {name}")

    def _blob_key(self, path: Path) -> str:
        return os.path.relpath(path, self.blobs.local_path(""))

    def _settle(self, job: JobRow, child: Child, outcome: Outcome) -> None:
        code = child.wait() if not (outcome.lost or outcome.stopping) else child.process.returncode
        if outcome.lost:
            return  # cancelled, or another worker took over: they own the status now
        if outcome.stopping:
            self._hand_back(job)
        elif code == 0 and outcome.done is not None:
            self._succeed(job, outcome.done)
        elif code == BAD_INPUT_EXIT or (outcome.error and outcome.error.get("code") == "invalid_file"):
            self._fail(job, _error_from(outcome.error, code, child))
        else:
            self._retry_or_fail(job, _error_from(outcome.error, code, child))

    def _succeed(self, job: JobRow, done: dict[str, Any]) -> None:
        output = Path(str(done.get("output_dir") or self._job_dir(job) / "output"))
        results_id = ids.new_id("file")
        results = output / "results.csv"
        size = 0
        if results.exists():
            with results.open("rb") as stream:
                size, _ = self.blobs.put_stream(f"files/{results_id}", stream)
        name = self.model_name
        with self.database.session() as session:
            if not job_store.transition(
                session,
                job.id,
                from_statuses=("running",),
                worker_id=self.worker_id,
                status="succeeded",
                fine_tuned_model=name,
                result_files=[results_id] if size else [],
                trained_tokens=int(done.get("trained_tokens") or 0),
                finished_at=ids.now(),
            ):
                return
            if size:
                file_store.add_file(
                    session,
                    id=results_id,
                    owner=job.owner,
                    filename="compiled_results.csv",
                    purpose="fine-tune-results",
                    bytes=size,
                    sha256="",
                    created_at=ids.now(),
                    status="processed",
                    summary=None,
                )
            model_store.add_model(
                session,
                ModelRow(
                    id=name,
                    owner=job.owner,
                    created_at=ids.now(),
                    job_id=job.id,
                    base_model=self.base_model,
                    path=self._blob_key(output),
                    deleted=False,
                ),
            )
            event_store.add_event(session, job.id, f"New fine-tuned model created: {name}")
            event_store.add_event(session, job.id, "The job has successfully completed")

    def _fail(self, job: JobRow, error: dict[str, Any]) -> None:
        with self.database.session() as session:
            job_store.fail(session, job.id, error, event=f"Fine-tune failed: {error['message']}")

    def _retry_or_fail(self, job: JobRow, error: dict[str, Any]) -> None:
        with self.database.session() as session:
            current = job_store.get_job(session, owner=job.owner, job_id=job.id)
            if current.attempts >= self.settings.max_attempts:
                error = dict(error, message=f"{error['message']} (gave up after {current.attempts} attempts)")
            elif job_store.requeue(session, current, expected_heartbeat=None, refund_attempt=False):
                event_store.add_event(
                    session,
                    job.id,
                    f"Training stopped unexpectedly ({error['message']}); retrying from the last checkpoint "
                    f"(attempt {current.attempts + 1} of {self.settings.max_attempts})",
                    level="warning",
                )
                return
        self._fail(job, error)

    def _hand_back(self, job: JobRow) -> None:
        with self.database.session() as session:
            current = job_store.get_job(session, owner=job.owner, job_id=job.id)
            if job_store.requeue(session, current, expected_heartbeat=None, refund_attempt=True):
                event_store.add_event(
                    session, job.id, "Worker shutting down; the job will resume from its last checkpoint"
                )

    def _event(self, job_id: str, message: str, **fields: Any) -> None:
        with self.database.session() as session:
            event_store.add_event(session, job_id, message, **fields)

    def _base_name(self, job: JobRow) -> str:
        with self.database.session() as session:
            row = model_store.find_model(session, owner=job.owner, name=job.model)
        return row.base_model if row else job.model


def _model_name(job: JobRow, base: str) -> str:
    """OpenAI's name formats: legacy fine-tunes and fine-tuning jobs name their models differently."""
    if job.api == "fine-tunes":
        return ids.legacy_model_name(base, job.owner, job.suffix, job.created_at)
    return ids.job_model_name(base, job.owner, job.suffix, job.id)


def _start_message(job: JobRow) -> str:
    return (
        "Fine-tuning job started"
        if job.attempts <= 1
        else f"Fine-tuning job resumed (attempt {job.attempts})"
    )


def _metrics_message(data: dict[str, Any]) -> str:
    parts = [f"Step {int(data.get('step', 0))}"]
    for key in ("training_loss", "validation_loss", "training_token_accuracy", "classification/accuracy"):
        if isinstance(data.get(key), int | float):
            parts.append(f"{key}={data[key]:.4f}")
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def _error_from(event: dict[str, Any] | None, code: int | None, child: Child) -> dict[str, Any]:
    if event is not None:
        return {
            "code": str(event.get("code") or "training_failed"),
            "message": str(event.get("message")),
            "param": event.get("param"),
        }
    tail = child.log_tail().replace("\n", " | ")
    return {
        "code": "training_crashed",
        "message": f"the training process exited with code {code}"
        + (f"; last output: {tail}" if tail else ""),
        "param": None,
    }

"""Run one claimed job: hand its spec to a training child, turn the child's typed events into job events
and checkpoints, keep the heartbeat, and record the outcome (success in one transaction; a crash retried
with backoff up to a bound). The child is stopped whenever the runner stops following it, whatever the
reason, so a job never has two live trainers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge import graders, ids
from tuneforge.settings import Settings
from tuneforge.spec import ReinforcementMethod, TrainJob, TrainSpec
from tuneforge.store import events as event_store
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.store.tables import CheckpointRow, JobRow, ModelRow
from tuneforge.tracking.live import TrackerSet
from tuneforge.tracking.sync import finish_live
from tuneforge.training import child as training_child
from tuneforge.training.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    ExitCode,
    HyperparametersEvent,
    MessageEvent,
    MetricsEvent,
)
from tuneforge.worker.child import Child, resource_environment
from tuneforge.worker.resume import ResumeKeeper

log = logging.getLogger(__name__)

BUSY_RETRY_S = 5.0  # a job whose directory another trainer still holds is tried again this much later
EXIT_GRACE_S = 60.0  # a child whose events have ended gets this long to exit by itself
PACE_MIN_STEPS = 2  # steps measured before the estimate is revised from them (the first allocates)
# A revised finish is written only when it moved by more than this share of the time left (or REVISE_MIN_S):
# a steady pace costs no writes, a machine that got busier shows within a few steps.
REVISE_SHARE = 0.05
REVISE_MIN_S = 5


@dataclass
class Pace:
    """The attempt's measured seconds per step, from the elapsed time its metrics events carry; counted
    from the first event seen, so a resumed attempt measures only its own steps."""

    total_steps: int
    origin: tuple[int, float] | None = None  # (step, elapsed_s) of the first metrics event
    shown: int | None = None  # the estimated_finish last written

    def revised_finish(self, step: int, elapsed_s: float, now: int) -> int | None:
        """The finish to write now, or None (too few steps measured, or not moved enough to write)."""
        if self.origin is None:
            self.origin = (step, elapsed_s)
            return None
        steps = step - self.origin[0]
        if steps < PACE_MIN_STEPS:
            return None
        left = max(0.0, (elapsed_s - self.origin[1]) / steps * (self.total_steps - step))
        finish = now + round(left)
        if self.shown is not None and abs(finish - self.shown) <= max(REVISE_MIN_S, REVISE_SHARE * left):
            return None
        self.shown = finish
        return finish


@dataclass
class Outcome:
    done: DoneEvent | None = None
    error: ErrorEvent | None = None
    ended: bool = False  # the child's event stream ended: it is exiting by itself
    lost: bool = False  # the job stopped being ours (cancelled, or taken over after a stall)
    stopping: bool = False  # our own worker is shutting down
    seen_checkpoints: set[int] = field(default_factory=set)
    pace: Pace | None = None  # from the Hyperparameters event on


class JobRunner:
    def __init__(self, settings: Settings, database: Database, blobs: BlobStore, worker_id: str) -> None:
        self.settings, self.database, self.blobs, self.worker_id = settings, database, blobs, worker_id

    def run(self, job: JobRow, should_stop: Callable[[], bool]) -> None:
        """Run `job` to an outcome; `should_stop()` asks us to hand the job back (server shutdown)."""
        try:
            train_job = self._train_job(job)
            self.base_model = self._base_name(job)  # looked up once: names are fixed for the whole run
            self.model_name = job.model_name or _model_name(job, self.base_model)  # chosen at create
        except Exception as exc:  # a model or file that vanished after create: no retry can help
            self._fail(job, {"code": "invalid_job", "message": str(exc), "param": None})
            return
        self._event(job.id, _start_message(job))
        self.trackers = TrackerSet.for_job(
            self.settings, job, lambda m: self._event(job.id, m, level="warning")
        )
        self.resume = ResumeKeeper(self.blobs, train_job.output_dir, self.settings.heartbeat_interval_s)
        self.resume.restore()  # a job taken over from another host continues from its stored state
        task = self._job_dir(job) / "task.json"
        training_child.write_task(task, train_job, self.settings)
        child = Child(
            training_child.command(task, self.settings, method=train_job.spec.method.type),
            self._job_dir(job) / "train.log",
            resource_environment(self.settings),
        )
        outcome = None
        self.resume.start()
        try:
            outcome = self._follow(job, child, should_stop)
        finally:  # on any exit, a database error included: never leave a trainer behind
            child.stop(exit_grace_s=EXIT_GRACE_S if outcome is not None and outcome.ended else 0.0)
            self.resume.stop(keep_last=outcome is not None and not outcome.lost and outcome.done is None)
        self._settle(job, child, outcome)
        finish_live(self.trackers, self.database, self.blobs, job.id)  # W&B / MLflow runs end as the job did

    def _train_job(self, job: JobRow) -> TrainJob:
        if job.spec is None:
            raise ValueError(f"job {job.id} has no spec")
        spec = TrainSpec.model_validate(job.spec)
        return TrainJob(
            spec=spec,
            model_source=self._model_source(job),
            grader_models=self._grader_models(job, spec),
            training_path=self._file_path(spec.training_file),
            validation_path=self._file_path(spec.validation_file) if spec.validation_file else None,
            output_dir=self._job_dir(job) / "output",
            resume=True,  # a retried or recovered attempt continues from the latest resume state
            prune_checkpoints=False,  # this runner prunes: the listing first, then the disk
        )

    def _grader_models(self, job: JobRow, spec: TrainSpec) -> dict[str, str]:
        with self.database.session() as session:
            return grader_locations(session, self.blobs, job.owner, spec)

    def _file_path(self, file_id: str) -> Path:
        return self.blobs.local_path(f"files/{file_id}")

    def _model_source(self, job: JobRow) -> str:
        with self.database.session() as session:
            key = model_store.usable_path(session, owner=job.owner, name=job.model)
        return str(self.blobs.local_path(key)) if key else job.model

    def _job_dir(self, job: JobRow) -> Path:
        """Where the child writes: on an object store, a local workspace whose models are published."""
        return self.blobs.workspace(f"jobs/{job.id}")

    # --- following the child ---------------------------------------------------------------------------

    def _follow(self, job: JobRow, child: Child, should_stop: Callable[[], bool]) -> Outcome:
        """Beat and record events until the child's stream ends. A database that stops answering does not
        end the run: events wait and the child trains on, until the heartbeat is older than
        `stale_after_s` (another worker may then take the job over, so this one stops its child)."""
        outcome, pending = Outcome(), list[Event | None]()
        last_beat = last_ok = time.monotonic()
        while True:
            pending += child.next_events(timeout=self.settings.heartbeat_interval_s / 2)
            if pending or time.monotonic() - last_beat >= self.settings.heartbeat_interval_s:
                last_beat = time.monotonic()
                try:
                    ended = self._beat_and_record(job, pending, outcome)
                    last_ok = time.monotonic()
                except Exception:
                    log.exception("job %s: the database did not answer; events are kept for later", job.id)
                    ended = False
                    if time.monotonic() - last_ok >= self.settings.stale_after_s:
                        outcome.lost = True
                if ended:
                    return outcome
            if outcome.lost or should_stop():
                outcome.stopping = not outcome.lost
                return outcome

    def _beat_and_record(self, job: JobRow, pending: list[Event | None], outcome: Outcome) -> bool:
        """Beat first, so nothing is written for a job cancelled meanwhile; then record (and drop) each
        pending event. True at the end of the child's stream."""
        with self.database.session() as session:
            outcome.lost = not job_store.heartbeat(session, job.id, self.worker_id)
        while pending and not outcome.lost:
            event = pending[0]
            if event is None:
                outcome.ended = True
                return True
            self._handle(job, event, outcome)
            pending.pop(0)
        return False

    def _handle(self, job: JobRow, event: Event, outcome: Outcome) -> None:
        match event:
            case MetricsEvent():
                data = {**event.metrics, **{k: v for k, v in event.row.items() if k != "step"}}
                self._event(job.id, _metrics_message(event), type="metrics", data=data)
                self.trackers.metrics(event.row)
                self._revise_finish(job, event, outcome.pace)
            case HyperparametersEvent():
                finish = self._record_resolved(job, event)
                outcome.pace = Pace(event.resolved.total_steps, shown=finish)
                self.trackers.hyperparameters(event.resolved.model_dump())
            case CheckpointEvent():
                self._record_checkpoint(job, event.step, event.path, event.metrics, outcome)
            case DoneEvent():
                outcome.done = event
            case ErrorEvent():
                outcome.error = event
            case MessageEvent():
                self._event(job.id, event.message, level="warn" if event.level == "warning" else "info")

    def _revise_finish(self, job: JobRow, event: MetricsEvent, pace: Pace | None) -> None:
        """`estimated_finish` from the steps measured so far: the first estimate was a forecast."""
        if pace is None or event.elapsed_s is None:
            return
        finish = pace.revised_finish(int(event.row.get("step", 0)), event.elapsed_s, ids.now())
        if finish is not None:
            with self.database.session() as session:
                job_store.transition(session, job.id, from_statuses=("running",), estimated_finish=finish)

    def _record_resolved(self, job: JobRow, event: HyperparametersEvent) -> int:
        """Record the resolved values and the forecast finish (returned; measured steps revise it)."""
        finish = ids.now() + int(event.facts.estimated_seconds)
        resolved = event.resolved.model_dump()
        with self.database.session() as session:
            job_store.transition(
                session, job.id, from_statuses=("running",), resolved=resolved, estimated_finish=finish
            )
            shown = ", ".join(f"{k}={v}" for k, v in resolved.items() if k != "reasons" and v is not None)
            shown += f", data_format={event.facts.data_format}"  # clients (the dashboard) read it here
            event_store.add_event(session, job.id, f"Hyperparameters: {shown}", data=event.facts.model_dump())
        return finish

    def _record_checkpoint(
        self, job: JobRow, step: int, path: Path, metrics: dict[str, Any], outcome: Outcome
    ) -> None:
        if step in outcome.seen_checkpoints:
            return
        outcome.seen_checkpoints.add(step)
        self.blobs.publish(path)  # stored before it is listed: what the API lists is there
        with self.database.session() as session:
            pruned = self._list_checkpoint(session, job, step, path, metrics)
        self._delete_pruned(job, pruned)

    def _list_checkpoint(
        self, session: Session, job: JobRow, step: int, path: Path, metrics: dict[str, Any]
    ) -> list[str]:
        """List the checkpoint and unlist those beyond the kept number; returns the unlisted ones' blob
        keys, deleted from disk only after this transaction commits, so what the API lists is there."""
        name = f"{self.model_name}:ckpt-step-{step}"
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
                    metrics=dict(metrics, step=step),
                    path=self._blob_key(path),
                ),
            )
            event_store.add_event(session, job.id, f"Checkpoint created at step {step}: {name}")
        return model_store.prune_checkpoints(session, job_id=job.id, keep=self.settings.keep_checkpoints)

    def _delete_pruned(self, job: JobRow, keys: list[str]) -> None:
        final_model = self._blob_key(self._job_dir(job) / "output")
        for key in keys:
            if key != final_model:  # the final model is listed as a checkpoint too; it stays
                self.blobs.delete(key)

    def _blob_key(self, path: Path) -> str:
        return self.blobs.key_of(path)

    # --- outcomes ----------------------------------------------------------------------------------------

    def _settle(self, job: JobRow, child: Child, outcome: Outcome) -> None:
        code = _exit_code(child, outcome)
        if outcome.lost:
            return  # cancelled, or another worker took over: they own the status now
        if outcome.stopping:
            self._hand_back(job, "Worker shutting down; the job will resume from its last checkpoint")
        elif code == ExitCode.OK and outcome.done is not None:
            self._register(job, outcome.done)
        elif code == ExitCode.BUSY:
            self._hand_back(
                job, "Another trainer still holds this job; retrying shortly", delay_s=BUSY_RETRY_S
            )
        elif code == ExitCode.BAD_INPUT or (outcome.error and outcome.error.code == "invalid_file"):
            self._fail(job, _error_from(outcome.error, code, child))
        else:
            self._retry_or_fail(job, _error_from(outcome.error, code, child))

    def _register(self, job: JobRow, done: DoneEvent) -> None:
        """Succeed; a name taken after all (a model registered before names were chosen at create time)
        fails the job saying so, as no retry would change the name."""
        try:
            self._succeed(job, done)
        except IntegrityError:
            message = f"the fine-tuned model name '{self.model_name}' is already taken by another model"
            self._fail(job, {"code": "model_name_taken", "message": message, "param": "suffix"})

    def _succeed(self, job: JobRow, done: DoneEvent) -> None:
        output = done.output_dir
        results_id = ids.new_id("file")
        results = output / "results.csv"
        size = 0
        if results.exists():
            with results.open("rb") as stream:
                size, _ = self.blobs.put_stream(f"files/{results_id}", stream)
        self.blobs.publish(output)  # weights, tokenizer, manifest: before the model is registered
        with self.database.session() as session:
            if not job_store.transition(
                session,
                job.id,
                from_statuses=("running",),
                worker_id=self.worker_id,
                status="succeeded",
                fine_tuned_model=self.model_name,
                result_files=[results_id] if size else [],
                trained_tokens=done.trained_tokens,
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
                    id=self.model_name,
                    owner=job.owner,
                    created_at=ids.now(),
                    job_id=job.id,
                    base_model=self.base_model,
                    path=self._blob_key(output),
                    deleted=False,
                ),
            )
            # The final model is the last epoch's checkpoint too, as OpenAI lists it.
            pruned = self._list_checkpoint(session, job, done.step, output, done.metrics)
            event_store.add_event(session, job.id, f"New fine-tuned model created: {self.model_name}")
            event_store.add_event(session, job.id, "The job has successfully completed")
        self._delete_pruned(job, pruned)
        self.resume.discard()
        self.blobs.release(f"jobs/{job.id}")  # an object store holds it all now: no local copy stays

    def _fail(self, job: JobRow, error: dict[str, Any]) -> None:
        error = dict(error, message=self._redact(str(error["message"])))
        with self.database.session() as session:
            job_store.fail(session, job.id, error, event=f"Fine-tune failed: {error['message']}")

    def _retry_or_fail(self, job: JobRow, error: dict[str, Any]) -> None:
        """Retry a crashed attempt after a backoff that doubles with each attempt, so a brief fault (a full
        or read-only disk, an outage) passes before the attempts run out."""
        with self.database.session() as session:
            current = job_store.get_job(session, owner=job.owner, job_id=job.id)
            delay = self.settings.retry_backoff_s * 2 ** max(0, current.attempts - 1)
            if current.attempts >= self.settings.max_attempts:
                error = dict(error, message=f"{error['message']} (gave up after {current.attempts} attempts)")
            elif job_store.requeue(
                session, current, expected_heartbeat=None, refund_attempt=False, delay_s=delay
            ):
                event_store.add_event(
                    session,
                    job.id,
                    self._redact(
                        f"Training stopped unexpectedly ({error['message']}); retrying from the last "
                        f"checkpoint in {delay:.0f} s (attempt {current.attempts + 1} of "
                        f"{self.settings.max_attempts})"
                    ),
                    level="warning",
                )
                return
        self._fail(job, error)

    def _hand_back(self, job: JobRow, why: str, delay_s: float = 0.0) -> None:
        with self.database.session() as session:
            current = job_store.get_job(session, owner=job.owner, job_id=job.id)
            if job_store.requeue(
                session, current, expected_heartbeat=None, refund_attempt=True, delay_s=delay_s
            ):
                event_store.add_event(session, job.id, why)

    def _event(self, job_id: str, message: str, **fields: Any) -> None:
        with self.database.session() as session:
            event_store.add_event(session, job_id, self._redact(message), **fields)

    def _redact(self, text: str) -> str:
        """Job events and errors are read through the API: no server path may appear in them."""
        roots = (self.blobs.work_dir, self.blobs.cache_dir, self.settings.data_dir.resolve())
        for root in (*roots, self.settings.data_dir):
            text = text.replace(str(root).rstrip("/") + "/", "").replace(str(root), "<data dir>")
        return text

    def _base_name(self, job: JobRow) -> str:
        with self.database.session() as session:
            return model_store.base_model_of(session, owner=job.owner, name=job.model)


def _model_name(job: JobRow, base: str) -> str:
    """OpenAI's name formats: legacy fine-tunes and fine-tuning jobs name their models differently."""
    if job.api == "fine-tunes":
        return ids.legacy_model_name(base, job.owner, job.suffix, job.created_at)
    return ids.job_model_name(base, job.owner, job.suffix, job.id)


def grader_locations(session: Session, blobs: BlobStore, owner: str, spec: TrainSpec) -> dict[str, str]:
    """Where each model a reinforcement grader names is, resolved for `owner` as a job's base model is: a
    fine-tuned model's directory, or a base model's name. ValueError for a fine-tuned model gone since."""
    if not isinstance(spec.method, ReinforcementMethod):
        return {}
    grader = TypeAdapter(graders.Grader).validate_python(spec.method.grader)
    located = {}
    for _, model in graders.models(grader):
        key = model_store.usable_path(session, owner=owner, name=model)
        if key is None and ids.may_name_a_fine_tuned_model(model):
            raise ValueError(f"the grader's model '{model}' no longer exists")
        located[model] = str(blobs.local_path(key)) if key else model
    return located


def _start_message(job: JobRow) -> str:
    return (
        "Fine-tuning job started"
        if job.attempts <= 1
        else f"Fine-tuning job resumed (attempt {job.attempts})"
    )


def _metrics_message(event: MetricsEvent) -> str:
    row = event.row
    parts = [f"Step {int(row.get('step', 0))}"]
    keys = ("training_loss", "validation_loss", "training_token_accuracy", "classification/accuracy")
    for key in (*keys, "training_reward_mean", "validation_reward_mean"):  # the last two: reinforcement
        if key in row:
            parts.append(f"{key}={row[key]:.4f}")
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def _exit_code(child: Child, outcome: Outcome) -> int | None:
    """The child's exit code; under torchrun (which exits 1 for any failed rank), the one rank 0 named."""
    code = child.process.returncode
    if code and outcome.error is not None and outcome.error.exit_code is not None:
        return outcome.error.exit_code
    return code


def _error_from(event: ErrorEvent | None, code: int | None, child: Child) -> dict[str, Any]:
    if event is not None:
        return {"code": event.code, "message": event.message, "param": event.param}
    tail = child.log_tail().replace("\n", " | ")
    return {
        "code": "training_crashed",
        "message": f"the training process exited with code {code}"
        + (f"; last output: {tail}" if tail else ""),
        "param": None,
    }

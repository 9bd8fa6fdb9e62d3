"""Finished jobs as tracker runs: `tuneforge wandb sync` (and `mlflow sync`) replay a job's results CSV
through a tracker, once per job unless forced; the worker ends its live runs with the same outcome."""

from __future__ import annotations

import json
import netrc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.settings import Settings
from tuneforge.store import jobs as job_store
from tuneforge.store import keys as key_store
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore, open_blob_store
from tuneforge.store.db import Database, open_database
from tuneforge.store.tables import FINAL_STATUSES, JobRow
from tuneforge.tracking.live import TrackerSet, build_tracker
from tuneforge.tracking.results import Row, job_rows, parse_results, results_text
from tuneforge.tracking.trackers import Finish, Tracker

TrackerKind = Literal["wandb", "mlflow"]


@dataclass(frozen=True)
class Synced:
    job_id: str
    owner: str
    skipped: bool  # already synced (and not forced)
    where: dict[str, Any]  # the run's id and location


def summary(job: JobRow, rows: list[Row]) -> dict[str, Any]:
    """The last value of every metric, with the job's outcome: what a run's summary shows."""
    found: dict[str, Any] = {}
    for row in rows:
        found.update({k: v for k, v in row.items() if k != "step"})
    found.update(job_id=job.id, status=job.status, fine_tuned_model=job.fine_tuned_model)
    found.update(trained_tokens=job.trained_tokens, steps=int(rows[-1]["step"]) if rows else 0)
    return {k: v for k, v in found.items() if v is not None}


def finish_for(session: Session, blobs: BlobStore, job: JobRow, rows: list[Row]) -> Finish:
    files = {"training.jsonl": job.training_file}
    if job.validation_file:
        files["validation.jsonl"] = job.validation_file
    present = {
        name: blobs.local_path(f"files/{fid}") for name, fid in files.items() if blobs.exists(f"files/{fid}")
    }
    results = next(
        (blobs.local_path(f"files/{f}") for f in job.result_files or [] if blobs.exists(f"files/{f}")), None
    )
    model = model_store.find_model(session, owner=job.owner, name=job.fine_tuned_model or "")
    return Finish(
        status=job.status,
        summary=summary(job, rows),
        files=present,
        results=results,
        model_dir=blobs.local_path(model.path) if model is not None else None,
    )


def finish_live(trackers: TrackerSet, database: Database, blobs: BlobStore, job_id: str) -> None:
    """End a job's live runs with its recorded outcome (called by the worker once the job has settled)."""
    if not trackers.trackers:
        return
    with database.session() as session:
        job = session.get(JobRow, job_id, populate_existing=True)
        if job is None:
            return
        try:
            rows = job_rows(session, blobs, job)
        except Exception:  # no metrics at all (failed before the first step)
            rows = []
        outcome = finish_for(session, blobs, job, rows)
    trackers.finish(outcome)


def replay(tracker: Tracker, job: JobRow, rows: list[Row], outcome: Finish) -> dict[str, Any]:
    tracker.start(job)
    if job.resolved:
        tracker.log_params(dict(job.resolved))
    for row in rows:
        tracker.log_metrics(row)
    return tracker.finish(outcome)


def sync_jobs(
    settings: Settings,
    kind: TrackerKind,
    *,
    owners: Sequence[str] | None = None,
    job_id: str | None = None,
    options: dict[str, Any] | None = None,
    force: bool = False,
    progress: Callable[[Synced], None] = lambda _: None,
) -> list[Synced]:
    """Log each finished job of `owners` (None: every organisation), or just `job_id`, as a run; jobs
    already synced are skipped unless `force`."""
    if kind == "wandb":
        check_wandb_credentials(settings)
    database = open_database(settings)
    blobs = open_blob_store(settings)
    try:
        with database.session() as session:
            jobs = _finished_jobs(session, owners, job_id)
        done = []
        for job in jobs:
            done.append(_sync_one(settings, database, blobs, job, kind, options or {}, force))
            progress(done[-1])
        return done
    finally:
        database.engine.dispose()


def check_wandb_credentials(settings: Settings) -> None:
    """W&B without a key fails deep inside `wandb.init` (or prompts for one): say what to set first."""
    if settings.wandb_api_key or (settings.wandb_mode or "").lower() in ("offline", "disabled", "dryrun"):
        return
    host = urlsplit(settings.wandb_base_url).hostname or ""
    try:
        if netrc.netrc(settings.netrc_path).authenticators(host):
            return  # `wandb login` stored a key
    except (OSError, netrc.NetrcParseError):
        pass
    raise InvalidRequest(
        "No W&B API key: set WANDB_API_KEY (or run `wandb login`), or set WANDB_MODE=offline to write the "
        f"runs under {settings.data_dir / 'wandb'} for a later `wandb sync`"
    )


def owner_of_key(settings: Settings, secret: str) -> str | None:
    """The organisation an API key of this server belongs to; None when no key matches."""
    database = open_database(settings)
    try:
        with database.session() as session:
            row = key_store.authenticate(session, secret)
            return row.owner if row is not None else None
    finally:
        database.engine.dispose()


def count_finished(settings: Settings, *, owners: Sequence[str] | None) -> int:
    database = open_database(settings)
    try:
        with database.session() as session:
            return len(job_store.finished_jobs(session, owners=owners))
    finally:
        database.engine.dispose()


def _finished_jobs(session: Session, owners: Sequence[str] | None, job_id: str | None) -> list[JobRow]:
    if job_id is None:
        return job_store.finished_jobs(session, owners=owners)
    job = session.get(JobRow, job_id)
    if job is None or (owners is not None and job.owner not in owners):
        scope = "" if owners is None else f" in organisation {', '.join(owners)}"
        raise NotFound(f"No job with id '{job_id}'{scope}", param="id")
    if job.status not in FINAL_STATUSES:
        raise InvalidRequest(f"Job {job_id} is {job.status}; only finished jobs are synced", param="id")
    return [job]


def _sync_one(
    settings: Settings,
    database: Database,
    blobs: BlobStore,
    job: JobRow,
    kind: TrackerKind,
    options: dict[str, Any],
    force: bool,
) -> Synced:
    marker = f"tracking/{kind}/{job.id}.json"
    if blobs.exists(marker) and not force:
        return Synced(job.id, job.owner, True, json.loads(blobs.read_bytes(marker)))
    tracker = build_tracker(settings, {"type": kind, kind: options})
    assert tracker is not None
    text = results_text(blobs, job)
    rows = parse_results(text) if text is not None else []
    with database.session() as session:
        outcome = finish_for(session, blobs, job, rows)
    where = replay(tracker, job, rows, outcome)
    blobs.put_bytes(marker, json.dumps({**where, "synced_at": ids.now()}).encode())
    return Synced(job.id, job.owner, False, where)

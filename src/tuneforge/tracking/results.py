"""A job's metric rows: its results CSV once it has finished, its metrics events while it runs."""

from __future__ import annotations

import csv
import io
import math

from sqlalchemy.orm import Session

from tuneforge.errors import NotFound
from tuneforge.store import events as event_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.tables import JobRow

Row = dict[str, float]


def parse_results(text: str) -> list[Row]:
    """OpenAI's results CSV as rows of floats; empty cells (a metric not measured at a step) are left out."""
    rows: list[Row] = []
    for line in csv.DictReader(io.StringIO(text)):
        row = {key: _number(value) for key, value in line.items() if key and value not in (None, "")}
        rows.append({key: value for key, value in row.items() if math.isfinite(value)})
    return rows


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def results_text(blobs: BlobStore, job: JobRow) -> str | None:
    """The job's results CSV, or None when it has none (not finished, or failed before any step)."""
    for file_id in job.result_files or []:
        key = f"files/{file_id}"
        if blobs.exists(key):
            return blobs.read_bytes(key).decode("utf-8")
    return None


def job_rows(session: Session, blobs: BlobStore, job: JobRow) -> list[Row]:
    """The results CSV when there is one, else the metrics events logged so far (a running job)."""
    text = results_text(blobs, job)
    if text is not None:
        return parse_results(text)
    by_step: dict[float, Row] = {}
    for event in event_store.list_events(session, job.id):
        if event.type == "metrics" and event.data:
            row = {k: float(v) for k, v in event.data.items() if isinstance(v, int | float)}
            if "step" in row:
                by_step.setdefault(row["step"], {}).update(row)
    if not by_step:
        raise NotFound(f"Job {job.id} has no metrics yet", param="job_id", code="no_metrics")
    return [by_step[step] for step in sorted(by_step)]

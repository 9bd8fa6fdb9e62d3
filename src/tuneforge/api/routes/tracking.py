"""Curves of a job's metrics as a PNG (tuneforge extensions of both fine-tuning APIs): from the results CSV
once the job has finished, from its metrics events while it runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tuneforge.api.deps import BlobsDep, OwnerDep, SessionDep
from tuneforge.store import jobs as job_store
from tuneforge.store.tables import JobApi
from tuneforge.tracking.curves import render_curves
from tuneforge.tracking.results import job_rows

router = APIRouter(tags=["tracking (tuneforge)"])

_PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "1200x900 PNG"}}


@router.get("/v1/fine_tuning/jobs/{job_id}/curves.png", response_class=Response, responses=_PNG)
def job_curves(job_id: str, session: SessionDep, blobs: BlobsDep, owner: OwnerDep) -> Response:
    return _curves(job_id, "fine_tuning.jobs", session, blobs, owner)


@router.get("/v1/fine-tunes/{fine_tune_id}/curves.png", response_class=Response, responses=_PNG)
def fine_tune_curves(fine_tune_id: str, session: SessionDep, blobs: BlobsDep, owner: OwnerDep) -> Response:
    return _curves(fine_tune_id, "fine-tunes", session, blobs, owner)


def _curves(job_id: str, api: JobApi, session: SessionDep, blobs: BlobsDep, owner: str) -> Response:
    """Runs on a request thread (sync routes): the lookups and matplotlib (~0.3 s) stay off the loop."""
    job = job_store.get_job(session, owner=owner, job_id=job_id, api=api)
    rows = job_rows(session, blobs, job)
    title = f"{job.id} · {job.fine_tuned_model or job.model} · {job.status}"
    png = render_curves(rows, title)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

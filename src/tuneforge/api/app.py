"""The FastAPI application: OpenAI-compatible routes over the store, with embedded workers.

Built by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI

from tuneforge import __version__, catalog
from tuneforge.api import errors
from tuneforge.api.auth import RateLimiter, get_owner
from tuneforge.api.limits import BodySizeLimit
from tuneforge.api.routes import (
    evaluations,
    files,
    fine_tunes,
    fine_tuning_jobs,
    health,
    models,
    reports,
    tracking,
)
from tuneforge.errors import NotFound
from tuneforge.settings import Settings
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database, open_database
from tuneforge.store.models import find_checkpoint, find_model


def create_app(settings: Settings, *, workers: int | None = None) -> FastAPI:
    """`workers` embedded job workers (default: settings.workers); 0 runs the API alone."""
    database = open_database(settings)
    blobs = BlobStore(settings.resolved_blob_url)
    n_workers = settings.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = None
        if n_workers > 0:
            from tuneforge.worker.pool import WorkerPool

            pool = WorkerPool(settings, database, blobs, concurrency=n_workers)
            pool.start()
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()

    app = FastAPI(title="tuneforge", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.blobs = blobs
    app.state.rate_limiter = RateLimiter(settings.requests_per_minute)
    app.state.locate_model = lambda name: locate_model(database, blobs, settings, name)
    errors.install(app)
    app.add_middleware(BodySizeLimit, settings=settings)
    app.include_router(health.router)
    for module in (files, fine_tunes, fine_tuning_jobs, models, tracking, reports, evaluations):
        app.include_router(module.router, dependencies=[Depends(get_owner)])  # every /v1 call has a key
    return app


def locate_model(
    database: Database, blobs: BlobStore, settings: Settings, name: str
) -> catalog.ModelRef | Path:
    """A fine-tuned model's directory, or a base model's reference; NotFound names the param."""
    with database.session() as session:
        row = find_model(session, owner=settings.organization, name=name)
        key = row.path if row is not None else None
        if key is None:
            checkpoint = find_checkpoint(session, owner=settings.organization, name=name)
            key = checkpoint.path if checkpoint is not None else None
    if key is not None:
        return blobs.local_path(key)
    try:
        return catalog.resolve(name, settings)
    except NotFound as exc:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found") from exc

"""The FastAPI application: OpenAI-compatible routes over the store, with embedded workers.

Built by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from tuneforge import __version__, catalog, ids
from tuneforge.api import errors
from tuneforge.api.access import ensure_base_model_loadable, ensure_model_access, locate_base_model
from tuneforge.api.auth import ApiKeyGate, OwnerDep, RateLimiter, get_owner
from tuneforge.api.limits import BodySizeLimit
from tuneforge.api.preflight import PreflightPool
from tuneforge.api.routes import (
    adapters,
    batches,
    checkpoint_permissions,
    completions,
    evaluations,
    files,
    fine_tunes,
    fine_tuning_jobs,
    graders,
    health,
    models,
    reports,
    tracking,
    uploads,
)
from tuneforge.api.screen import NulByteScreen
from tuneforge.inference.engine import Backend, InferenceEngine, Locate
from tuneforge.inference.process import ProcessEngine
from tuneforge.settings import Settings
from tuneforge.store.blobs import BlobStore, open_blob_store
from tuneforge.store.db import Database, open_database
from tuneforge.store.models import model_path


def create_app(settings: Settings, *, workers: int | None = None) -> FastAPI:
    """`workers` embedded job workers (default: settings.workers); 0 runs the API alone."""
    database = open_database(settings)
    blobs = open_blob_store(settings)
    n_workers = settings.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = None
        if n_workers > 0:
            from tuneforge.api.batch_lines import EngineLines
            from tuneforge.worker.pool import WorkerPool

            lines = EngineLines(database, app.state.inference)  # batches share the routes' engine
            pool = WorkerPool(settings, database, blobs, concurrency=n_workers, batch_server=lines)
            pool.start()
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()
            app.state.inference.close()
            app.state.preflight.close()

    app = FastAPI(title="tuneforge", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.blobs = blobs
    app.state.rate_limiter = RateLimiter(
        settings.requests_per_minute, redis_url=settings.redis_url, key_prefix=settings.redis_key_prefix
    )
    app.state.locate_model = lambda name: locate_model(database, blobs, settings, name)
    app.state.inference = inference_engine(settings, app.state.locate_model)  # torch loads on first use
    app.state.preflight = PreflightPool(settings)  # its process starts on the first preflight
    errors.install(app)
    app.add_middleware(BodySizeLimit, settings=settings)
    app.add_middleware(ApiKeyGate, settings=settings, database=database)  # no key, no body read
    app.add_middleware(NulByteScreen)
    app.include_router(health.router)
    resources = (
        adapters,
        files,
        uploads,
        fine_tunes,
        fine_tuning_jobs,
        checkpoint_permissions,
        graders,
        models,
        batches,
    )
    for module in (*resources, tracking, reports, evaluations):
        app.include_router(module.router, dependencies=[Depends(get_owner)])  # every /v1 call has a key
    app.include_router(completions.router, prefix="/v1", dependencies=[Depends(authorize_model)])
    return app


def inference_engine(settings: Settings, locate: Locate) -> Backend:
    """The serving backend: by default in a child process, so forward passes do not wait on the API's
    Python (one interpreter runs one thread at a time); `inference_process=False` keeps it here."""
    if settings.inference_process:
        return ProcessEngine(settings, model_locator)
    return InferenceEngine(settings, locate)


def model_locator(settings: Settings) -> Locate:
    """`locate_model` over a database and blob store of the process's own (the inference child's)."""
    database = open_database(settings)
    blobs = open_blob_store(settings)
    return lambda name: locate_model(database, blobs, settings, name)


async def authorize_model(request: Request, owner: OwnerDep) -> None:
    """A fine-tuned model (or checkpoint) is callable only by its own organisation; to anyone else it
    does not exist. Base models are shared."""
    try:
        body = await request.json()
    except ValueError:
        return  # not JSON: the route's own validation answers with a 400
    name = body.get("model") if isinstance(body, dict) else None  # a list or string: the route's 400
    if not isinstance(name, str):
        return
    # Off the event loop: a database lookup may wait for SQLite's writer, a hub probe for the network.
    if ids.may_name_a_fine_tuned_model(name):
        await run_in_threadpool(ensure_model_access, request.app.state.database, owner, name)
    else:
        await run_in_threadpool(ensure_base_model_loadable, request.app.state.settings, name)


def locate_model(
    database: Database, blobs: BlobStore, settings: Settings, name: str
) -> catalog.ModelRef | Path:
    """A fine-tuned model's directory, or a base model's reference; NotFound names the param."""
    # Names of fine-tuned models are unique across organisations; `authorize_model` has already
    # checked that the caller owns this one.
    with database.session() as session:
        key = model_path(session, name)
    if key is not None:
        return blobs.local_path(key)
    return locate_base_model(settings, name)

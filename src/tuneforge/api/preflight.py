"""The preflight (a job's dry run) off the API process. It reads and tokenises the job's data and counts its
model with torch, which the API process never imports (a 5 s import, and then Python work that would hold
the event loop's interpreter): it runs in one spawned process of its own, started on the first preflight and
kept, so later ones pay neither the import nor a model build. That process measures this machine's pace
with a warm-up when nothing has measured it yet, for the embedded worker trains here too; a worker on
another host keeps its own measurements (docs/training.md)."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy.orm import Session

from tuneforge.api.fine_tuning import check_spec
from tuneforge.errors import EngineUnavailable, TuneforgeError
from tuneforge.inference import scorer
from tuneforge.settings import Settings
from tuneforge.spec import Preflight, TrainJob, TrainSpec
from tuneforge.store import models as model_store
from tuneforge.store.blobs import BlobStore
from tuneforge.worker.runner import grader_locations


def checked_job(
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    owner: str,
    spec: TrainSpec,
    metadata: dict[str, str] | None,
) -> TrainJob:
    """The job the worker would run for `spec`, after create's own checks (so a preflight refuses what
    create refuses, with the same error); its output directory is never written."""
    check_spec(session, settings, owner, spec, metadata)
    key = model_store.usable_path(session, owner=owner, name=spec.model)
    return TrainJob(
        spec=spec,
        model_source=str(blobs.local_path(key)) if key else spec.model,
        grader_models=grader_locations(session, blobs, owner, spec),
        training_path=blobs.local_path(f"files/{spec.training_file}"),
        validation_path=blobs.local_path(f"files/{spec.validation_file}") if spec.validation_file else None,
        output_dir=settings.data_dir / "preflight",
    )


class PreflightPool:
    """One preflight process, started on first use; a dead one is replaced on the next call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    async def run(self, job: TrainJob) -> Preflight:
        executor = self._running()
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(
                executor, _preflight_here, job.model_dump_json(), self.settings
            )
        except BrokenProcessPool as exc:
            self._discard(executor)
            raise EngineUnavailable("The preflight process stopped; try again.") from exc
        return Preflight.model_validate_json(answer)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("spawn")  # a fork would copy the API's threads
                self._executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)


def _preflight_here(job_json: str, settings: Settings) -> str:
    """Runs in the preflight process: torch is imported there, on its first call."""
    from tuneforge.training.preflight import preflight

    job = TrainJob.model_validate_json(job_json)
    try:
        with scorer.for_job(job, settings) as grader_scorer:  # a model grader's model, for the warm-up
            return preflight(job, settings, scorer=grader_scorer).model_dump_json()
    except Exception as exc:
        raise _picklable(exc) from None


def _picklable(exc: Exception) -> Exception:
    """A typed error crosses to the API as itself (its status and param intact); anything else as a 500
    that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc if isinstance(exc, TuneforgeError) else TuneforgeError(f"{type(exc).__name__}: {exc}")
    except Exception:
        return TuneforgeError(f"{type(exc).__name__}: {exc}")

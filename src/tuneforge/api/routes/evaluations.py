"""POST /v1/tuneforge/evaluations (a tuneforge extension): `tuneforge eval` as a route. The model runs on
this server's inference engine, the one behind `/v1/completions`, over an uploaded test file."""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.access import ensure_model_access
from tuneforge.api.deps import BlobsDep, DatabaseDep, OwnerDep
from tuneforge.evaluation.completers import EngineCompleter
from tuneforge.evaluation.examples import load_examples
from tuneforge.evaluation.run import EvalOptions
from tuneforge.evaluation.service import evaluate_models
from tuneforge.store import files as file_store
from tuneforge.store.db import Database

router = APIRouter(prefix="/v1/tuneforge/evaluations", tags=["evaluation (tuneforge)"])


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    file: str  # an uploaded file's id, in the format of the model's training data
    task: Literal["classification", "generation", "extraction"] = "classification"
    compare: str | None = None  # a second model, evaluated on the same examples
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    seed: int = 0
    include_predictions: bool = False
    include_plots: bool = False  # base64 PNGs of each confusion matrix and reliability diagram


@router.post("")
async def create_evaluation(
    body: EvaluationRequest,
    request: Request,
    database: DatabaseDep,
    blobs: BlobsDep,
    owner: OwnerDep,
) -> dict[str, Any]:
    models = [body.model, *([body.compare] if body.compare else [])]
    filename = await run_in_threadpool(_authorize, database, owner, body.file, models)
    examples = await run_in_threadpool(load_examples, blobs.local_path(f"files/{body.file}"), name=filename)
    options = EvalOptions(task=body.task, max_tokens=body.max_tokens, seed=body.seed)
    engine = _engine(request)
    result = await evaluate_models(
        EngineCompleter(engine), models, examples, options, request.app.state.locate_model
    )
    for report in result["reports"]:
        if not body.include_predictions:
            report.pop("predictions")
        if body.include_plots and body.task == "classification":
            report["plots"] = await run_in_threadpool(_plots, report)
    return {"object": "tuneforge.evaluation", "file": body.file, **result}


def _authorize(database: Database, owner: str, file_id: str, models: list[str]) -> str:
    """The test file's name, once the caller may use it and every model (on a thread: these are
    database lookups, and the evaluation itself may run for minutes after them)."""
    with database.session() as session:
        filename = file_store.get_file(session, owner=owner, file_id=file_id, param="file").filename
    for name in models:
        ensure_model_access(database, owner, name)
    return filename


def _engine(request: Request) -> Any:
    """The completions routes' engine (`app.state.inference`), so models load once; made here if the app
    was built without one."""
    state = request.app.state
    if getattr(state, "inference", None) is None:
        from tuneforge.inference.engine import InferenceEngine

        state.inference = InferenceEngine(state.settings, state.locate_model)
    return state.inference


def _plots(report: dict[str, Any]) -> dict[str, str]:
    from tuneforge.evaluation.plots import confusion_png, reliability_png

    return {
        "confusion_matrix_png": base64.b64encode(confusion_png(report["metrics"], report["model"])).decode(),
        "reliability_png": base64.b64encode(reliability_png(report["metrics"], report["model"])).decode(),
    }

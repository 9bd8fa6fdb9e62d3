"""Serving logic of the /graders routes: check a grader (its templates, metrics, source, formula, and
that every model it names is one this caller can use), and run it on one sample, model graders answered
by the app's inference engine (`inference.scorer.EngineScorer`)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from fastapi import Request

from tuneforge.api.access import ensure_model_access
from tuneforge.api.protocol.graders import RunGraderMetadata, RunGraderRequest, RunGraderResponse
from tuneforge.errors import InvalidGrader, NotFound
from tuneforge.graders import AnyGrader, GradeResult, Grading, Sample, grade, models, validate
from tuneforge.inference.scorer import EngineScorer
from tuneforge.settings import Settings


def check_grader(request: Request, owner: str, grader: AnyGrader) -> None:
    validate(grader)
    for name, model in models(grader):
        try:
            ensure_model_access(request.app.state.database, owner, model)
            request.app.state.locate_model(model)
        except NotFound as exc:
            raise InvalidGrader(
                f"Grader '{name}': the model '{model}' does not exist", param="grader.model"
            ) from exc


async def run_grader(request: Request, body: RunGraderRequest) -> RunGraderResponse:
    settings: Settings = request.app.state.settings
    scorer = EngineScorer(request.app.state.inference, asyncio.get_running_loop())
    grading = Grading.from_settings(settings, scorer=scorer)
    sample = Sample.from_text(body.model_sample)
    # A python grader waits on its process and a model grader on the engine: off the event loop.
    result = await asyncio.to_thread(grade, body.grader, sample, body.item, grading=grading)
    return response(result)


def response(result: GradeResult) -> RunGraderResponse:
    scores = result.sub_rewards or {result.name: result.score}
    tokens = sum(usage["total_tokens"] for usage in result.token_usage.values())
    metadata = RunGraderMetadata(
        name=result.name,
        type=result.type,
        errors=asdict(result.errors),
        execution_time=result.execution_time,
        scores=scores,
        token_usage=tokens if result.token_usage else None,
        sampled_model_name=next(iter(result.token_usage), None),
        warnings=result.warnings,
    )
    return RunGraderResponse(
        reward=result.score,
        metadata=metadata,
        sub_rewards=result.sub_rewards,
        model_grader_token_usage_per_model=result.token_usage,
    )

"""Serving logic of the /graders routes: check a grader (its templates, metrics, source, formula, and
that every model it names is one this caller can use), run it on one sample, and `EngineScorer`, the
app's inference engine behind the graders' `Scorer` protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import asdict
from typing import Any

from fastapi import Request

from tuneforge.api.access import ensure_model_access
from tuneforge.api.protocol.chat import ChatCompletionRequest, ChatMessage
from tuneforge.api.protocol.graders import RunGraderMetadata, RunGraderRequest, RunGraderResponse
from tuneforge.errors import EngineUnavailable, InvalidGrader, NotFound, TuneforgeError
from tuneforge.graders import (
    AnyGrader,
    GradeResult,
    Grading,
    Reply,
    Sample,
    Turn,
    grade,
    models,
    validate,
)
from tuneforge.graders.models import ModelSamplingParams
from tuneforge.inference.engine import Backend
from tuneforge.settings import Settings

SCORER_TIMEOUT_S = 300.0  # one grader model's answer; a hung engine must not hold the request forever


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


class EngineScorer:
    """A grader model's answer from the engine that serves `/v1/chat/completions`, so any model
    tuneforge serves (a base or a fine-tuned one) can grade. Called from a worker thread."""

    def __init__(self, engine: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop

    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        chat = self._engine.chat(_chat_request(model, messages, params))
        future = asyncio.run_coroutine_threadsafe(chat, self._loop)
        try:
            answer = future.result(SCORER_TIMEOUT_S)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()  # the engine drops the sequences of a cancelled request
            raise EngineUnavailable(
                f"the model '{model}' did not answer within {SCORER_TIMEOUT_S:g} s"
            ) from exc
        if not isinstance(answer, dict):
            raise TuneforgeError("the engine streamed an answer that was not asked to stream")
        usage: dict[str, Any] = answer.get("usage") or {}
        return Reply(
            text=answer["choices"][0]["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )


def _chat_request(model: str, messages: list[Turn], params: ModelSamplingParams) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=model,
        messages=[ChatMessage.model_validate(vars(turn)) for turn in messages],  # roles are a subset
        max_tokens=params.max_completions_tokens or 64,  # a score or a label is short
        seed=params.seed,
        temperature=1.0 if params.temperature is None else params.temperature,
        top_p=1.0 if params.top_p is None else params.top_p,
    )

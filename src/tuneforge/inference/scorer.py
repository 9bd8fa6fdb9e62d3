"""Model graders answered by the engine that serves `/v1/chat/completions`: `EngineScorer` puts any
`Backend` behind the graders' `Scorer` protocol (the API's `/graders/run`), and `LocalScorer` owns an
in-process engine for a training child whose reinforcement grader names a model (loaded once per job, on
the machine's device). Module level imports no torch: the engine starts on the first answer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from tuneforge import catalog
from tuneforge.errors import EngineUnavailable, TuneforgeError
from tuneforge.graders import Grader, Reply, Turn, models
from tuneforge.graders.models import ModelSamplingParams
from tuneforge.inference.engine import Backend, InferenceEngine
from tuneforge.settings import Settings
from tuneforge.spec import ReinforcementMethod, TrainJob

SCORER_TIMEOUT_S = 300.0  # one grader model's answer; a hung engine must not hold a request forever
DEFAULT_MAX_TOKENS = 64  # a score or a label is short


@dataclass(frozen=True)
class GraderMessage:
    role: str
    content: str

    def text(self) -> str:
        return self.content


@dataclass(frozen=True)
class GraderChat:
    """A grader model's chat request as the engine reads one (`ChatParams`): one answer, not streamed.
    Plain data, so it also crosses the pipe to an engine in its own process."""

    model: str
    messages: tuple[GraderMessage, ...]
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int | None
    max_completion_tokens: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: Mapping[str, float] = field(default_factory=dict)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: None = None
    logprobs: bool = False
    top_logprobs: int | None = None

    @classmethod
    def of(cls, model: str, messages: list[Turn], params: ModelSamplingParams) -> GraderChat:
        return cls(
            model=model,
            messages=tuple(GraderMessage(turn.role, turn.content) for turn in messages),
            max_tokens=params.max_completions_tokens or DEFAULT_MAX_TOKENS,
            seed=params.seed,
            temperature=1.0 if params.temperature is None else params.temperature,
            top_p=1.0 if params.top_p is None else params.top_p,
        )


class EngineScorer:
    """A grader model's answer from `engine` running on `loop`, so any model tuneforge serves (a base or
    a fine-tuned one) can grade. Called from threads other than the loop's, several at once when
    `grade_many` overlaps a batch's calls: the engine's scheduler then decodes them together."""

    def __init__(self, engine: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop

    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        chat = self._engine.chat(GraderChat.of(model, messages, params))
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


class LocalScorer:
    """An inference engine of this process's own, for the grader models of one training run. `locations`
    maps each model name the grader uses to where it is: a fine-tuned model's directory, or a base model's
    name (built-in, alias, local directory, hub id). Nothing loads until the first answer; each model then
    stays loaded (the registry's budgets still apply) until `close`."""

    def __init__(self, settings: Settings, locations: Mapping[str, str]) -> None:
        # The engine must not reset torch's thread count under the trainer (Runtime applies it).
        self._settings = settings.model_copy(update={"inference_threads": None})
        self._locations = dict(locations)
        self._engine = InferenceEngine(self._settings, self._locate)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grader-engine", daemon=True)
        self._thread.start()
        self._scorer = EngineScorer(self._engine, self._loop)

    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        return self._scorer.complete(model, messages, params)

    def close(self) -> None:
        self._engine.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> LocalScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _locate(self, name: str) -> catalog.ModelRef | Path:
        """What the registry loads for `name`: only the models this run's grader names."""
        where = self._locations.get(name)
        if where is None:
            raise EngineUnavailable(f"the model '{name}' is not one this run's grader names")
        if (Path(where) / catalog.MANIFEST_NAME).exists():
            return Path(where)  # a fine-tuned model: its manifest names its base
        return catalog.resolve(where, self._settings)


@contextlib.contextmanager
def for_job(job: TrainJob, settings: Settings) -> Iterator[LocalScorer | None]:
    """A scorer for the run's grader models while the run trains, or None when it grades without one."""
    locations = grader_locations(job)
    if not locations:
        yield None
        return
    with LocalScorer(settings, locations) as scorer:
        yield scorer


def grader_locations(job: TrainJob) -> dict[str, str]:
    """Each model the run's grader names, to where it is. A local run (`tuneforge train`) names them as it
    names its base model, by where they are; the worker resolved them for the job's organisation."""
    if not isinstance(job.spec.method, ReinforcementMethod):
        return {}
    grader = TypeAdapter(Grader).validate_python(job.spec.method.grader)
    return {model: job.grader_models.get(model, model) for _, model in models(grader)}

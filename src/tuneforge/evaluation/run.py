"""One evaluation: a model over a test file's examples for a task, predictions gathered concurrently (the
engine batches them), metrics computed on them; and a comparison of two models on the same examples."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from tuneforge.errors import InvalidRequest
from tuneforge.evaluation import metrics
from tuneforge.evaluation.completers import Completer
from tuneforge.evaluation.examples import EvalExample
from tuneforge.evaluation.models import TrainedWith
from tuneforge.evaluation.predict import generate, label_probabilities

Task = Literal["classification", "generation", "extraction"]
TASKS: tuple[Task, ...] = ("classification", "generation", "extraction")
OTHER = "<other>"  # a chat model's answer that is none of the labels
T = TypeVar("T")


@dataclass(frozen=True)
class EvalOptions:
    task: Task = "classification"
    max_tokens: int | None = None  # generation budget; default: enough for the longest reference
    seed: int = 0
    concurrency: int = 16  # requests in flight at once


async def evaluate(
    completer: Completer,
    model: str,
    examples: Sequence[EvalExample],
    options: EvalOptions,
    trained: TrainedWith = TrainedWith(),
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report for `model`: {"model", "task", "n", "metrics", "predictions"}."""
    if options.task not in TASKS:
        raise InvalidRequest(f"task must be one of {', '.join(TASKS)}, not '{options.task}'", param="task")
    if options.task == "classification":
        chosen = list(labels) if labels is not None else candidate_labels(examples, [trained])
        found, rows = await _classify(completer, model, examples, options, trained, chosen)
    else:
        found, rows = await _generate(completer, model, examples, options, trained)
    return {"model": model, "task": options.task, "n": len(examples), "metrics": found, "predictions": rows}


async def compare(
    completer: Completer,
    models: Sequence[tuple[str, TrainedWith]],
    examples: Sequence[EvalExample],
    options: EvalOptions,
) -> dict[str, Any]:
    """Each model's report on the same examples (and, for classification, the same label set)."""
    labels = candidate_labels(examples, [trained for _, trained in models])
    reports = [
        await evaluate(completer, name, examples, options, trained, labels=labels) for name, trained in models
    ]
    return {"task": options.task, "n": len(examples), "reports": reports}


def candidate_labels(examples: Sequence[EvalExample], trained: Sequence[TrainedWith]) -> list[str]:
    """The labels the models were trained on, then any other answer the test file holds."""
    seen: dict[str, None] = {}
    for info in trained:
        seen.update(dict.fromkeys(info.labels))
    seen.update(dict.fromkeys(e.reference for e in examples))
    return list(seen)


async def _classify(
    completer: Completer,
    model: str,
    examples: Sequence[EvalExample],
    options: EvalOptions,
    trained: TrainedWith,
    labels: list[str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gold = [e.reference for e in examples]
    if examples[0].prompt is not None:
        calls = [
            label_probabilities(completer, model, e.prompt or "", labels, eos=trained.eos_token)
            for e in examples
        ]
        probs = np.stack(await _gather(calls, options.concurrency))
        report = metrics.classification_metrics(gold, probs, labels)
    else:  # chat completions return no prompt log-probabilities: match the greedy answer to a label
        answers = await _answers(completer, model, examples, options, _budget(labels, options))
        probs = np.stack([_one_hot(a, labels) for a in answers])
        report = metrics.classification_metrics(gold, probs, [*labels, OTHER])
        report["calibration"] = None  # no probabilities to calibrate
    names = [*labels, OTHER]
    rows = [
        {
            "reference": g,
            "prediction": names[int(p.argmax())],
            "probabilities": [round(float(x), 6) for x in p],
        }
        for g, p in zip(gold, probs, strict=True)
    ]
    report["labels"] = labels
    return report, rows


def _one_hot(answer: str, labels: list[str]) -> np.ndarray:
    row = np.zeros(len(labels) + 1)
    stripped = [label.strip() for label in labels]
    row[stripped.index(answer.strip()) if answer.strip() in stripped else len(labels)] = 1.0
    return row


async def _generate(
    completer: Completer,
    model: str,
    examples: Sequence[EvalExample],
    options: EvalOptions,
    trained: TrainedWith,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    references = [_without_stop(e.reference, trained.stop) for e in examples]
    answers = await _answers(completer, model, examples, options, _budget(references, options))
    if options.task == "generation":
        report = metrics.generation_metrics(answers, references)
    else:
        report = metrics.extraction_metrics(answers, references)
    rows = [{"reference": r, "prediction": a} for r, a in zip(references, answers, strict=True)]
    return report, rows


async def _answers(
    completer: Completer,
    model: str,
    examples: Sequence[EvalExample],
    options: EvalOptions,
    max_tokens: int,
) -> list[str]:
    calls = [generate(completer, model, e, max_tokens=max_tokens, seed=options.seed) for e in examples]
    return await _gather(calls, options.concurrency)


def _budget(references: Sequence[str], options: EvalOptions) -> int:
    """Enough tokens for the longest reference: a token covers at least one character in every tokenizer
    we serve, plus a margin so a near miss is visible rather than cut off."""
    if options.max_tokens is not None:
        return options.max_tokens
    return max(16, min(1024, max(len(r) for r in references) + 16))


def _without_stop(text: str, stops: Sequence[str]) -> str:
    """The reference as the model is served: the engine cuts the trained stop sequence off the answer."""
    for stop in stops:
        if stop and text.endswith(stop):
            return text[: -len(stop)]
    return text


async def _gather(calls: Sequence[Awaitable[T]], limit: int) -> list[T]:
    """Await every call, at most `limit` at a time (each holds a request's sequences in the scheduler)."""
    gate = asyncio.Semaphore(max(1, limit))

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))

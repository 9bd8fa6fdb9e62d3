"""`grade(grader, sample, item)`: one sample's score under any of OpenAI's graders, with the sub-scores
and what went wrong. Grading never raises for a bad sample, item or grader code: that is a score of 0
with a warning and OpenAI's error flag, so a training step goes on. `validate` finds, before any sample,
what would make a grader fail every time, and raises `InvalidGrader` naming the param."""

from __future__ import annotations

import ast
import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuneforge.errors import InvalidGrader, TuneforgeError
from tuneforge.graders import formula, scoring, text
from tuneforge.graders.models import (
    AnyGrader,
    EvalMessage,
    InputOther,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)
from tuneforge.graders.sandbox import Outcome, SandboxLimits, run_python, run_python_batch
from tuneforge.graders.templates import Sample, check_fields, render
from tuneforge.settings import Settings

# What grade_many has already run for a case, by the sub-grader's id: a python grader's outcome, a
# model grader's reply (or the error it got instead).
Ran = dict[int, Outcome | scoring.Reply | TuneforgeError]
MAX_OVERLAPPED_CALLS = 64  # model-grader calls grade_many keeps in flight at once


@dataclass(frozen=True)
class Grading:
    """What grading needs from its surroundings: a scorer for model graders, the python sandbox's
    limits, and the paths a python grader may not read (the data directory)."""

    scorer: scoring.Scorer | None = None
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    deny_paths: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, *, scorer: scoring.Scorer | None = None) -> Grading:
        """The configured sandbox limits, denying the data dir and, where settings put them elsewhere,
        the local blob store and the SQLite file."""
        sandbox = SandboxLimits(
            wall_s=settings.grader_wall_s,
            cpu_s=settings.grader_cpu_s,
            memory_bytes=settings.grader_memory_mb << 20,
        )
        private = [settings.data_dir]
        for url in (settings.resolved_blob_url, settings.resolved_database_url.removeprefix("sqlite:///")):
            if "://" not in url or url.startswith("file://"):  # a local path, not a remote store
                private.append(Path(url.removeprefix("file://")))
        return cls(scorer=scorer, sandbox=sandbox, deny_paths=tuple(private))


@dataclass
class GradeErrors:
    """OpenAI's error flags of a grader run (`metadata.errors`)."""

    formula_parse_error: bool = False
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    invalid_variable_error: bool = False
    other_error: bool = False
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    model_grader_server_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_server_error_details: str | None = None


@dataclass
class GradeResult:
    score: float
    name: str
    type: str
    sub_rewards: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: GradeErrors = field(default_factory=GradeErrors)
    execution_time: float = 0.0
    token_usage: dict[str, dict[str, int]] = field(default_factory=dict)  # per grader model
    parts: dict[str, GradeResult] = field(default_factory=dict)  # a multi grader's sub-results, by name

    def fail(self, warning: str, **flags: Any) -> GradeResult:
        """This result as a failure: score 0, the warning kept, the flags set."""
        self.score = 0.0
        self.warnings.append(f"grader '{self.name}': {warning}")
        self.errors = replace(self.errors, **flags)
        return self


def grade(
    grader: AnyGrader, sample: Sample, item: Mapping[str, Any], *, grading: Grading | None = None
) -> GradeResult:
    started = time.perf_counter()
    result = _grade(grader, sample, dict(item), grading or Grading(), {})
    result.execution_time = time.perf_counter() - started
    return result


def grade_many(
    grader: AnyGrader, cases: Sequence[tuple[Sample, Mapping[str, Any]]], *, grading: Grading | None = None
) -> list[GradeResult]:
    """`grade` of each (sample, item), with each python grader run once over all of them in one
    sandboxed process (an interpreter start is most of a small grader's cost), and each model grader's
    calls made all at once (an engine batches calls that arrive together); same results."""
    grading = grading or Grading()
    started = time.perf_counter()
    ran: list[Ran] = [{} for _ in cases]
    for sub in _each(grader):
        if isinstance(sub, PythonGrader):
            pairs = [(sample.namespace(), item) for sample, item in cases]
            batch = run_python_batch(sub.source, pairs, limits=grading.sandbox, deny_paths=grading.deny_paths)
            for outcomes, outcome in zip(ran, batch, strict=True):
                outcomes[id(sub)] = outcome
        if isinstance(sub, ScoreModelGrader | LabelModelGrader) and grading.scorer is not None:
            _ask_all(sub, cases, grading.scorer, ran)
    results = [
        _grade(grader, sample, dict(item), grading, done)
        for (sample, item), done in zip(cases, ran, strict=True)
    ]
    share = (time.perf_counter() - started) / max(1, len(cases))  # a batch's time, split evenly
    for result in results:
        result.execution_time = share
    return results


def _ask_all(
    grader: ScoreModelGrader | LabelModelGrader,
    cases: Sequence[tuple[Sample, Mapping[str, Any]]],
    scorer: scoring.Scorer,
    ran: list[Ran],
) -> None:
    """The grader model's reply to each case, from overlapping calls. A case whose messages do not render
    is left to `_model`, which reports it."""
    asks: dict[int, list[scoring.Turn]] = {}
    for k, (sample, item) in enumerate(cases):
        with contextlib.suppress(InvalidGrader):
            asks[k] = scoring.render_messages(grader.input, sample, dict(item), grader=grader.name)

    def ask(messages: list[scoring.Turn]) -> scoring.Reply | TuneforgeError:
        try:
            return scorer.complete(grader.model, messages, _params(grader))
        except TuneforgeError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_OVERLAPPED_CALLS, len(asks)))) as pool:
        for k, answer in zip(asks, pool.map(ask, asks.values()), strict=True):
            ran[k][id(grader)] = answer


def _grade(
    grader: AnyGrader, sample: Sample, item: dict[str, Any], grading: Grading, ran: Ran
) -> GradeResult:
    """`ran`: what grade_many already ran on this case."""
    result = GradeResult(0.0, grader.name, grader.type)
    try:
        if isinstance(grader, MultiGrader):
            return _multi(grader, sample, item, grading, result, ran)
        if isinstance(grader, PythonGrader):
            outcome = ran.get(id(grader))
            if not isinstance(outcome, Outcome):
                outcome = run_python(
                    grader.source,
                    sample.namespace(),
                    item,
                    limits=grading.sandbox,
                    deny_paths=grading.deny_paths,
                )
            return _python(outcome, result)
        if isinstance(grader, ScoreModelGrader | LabelModelGrader):
            return _model(grader, sample, item, grading, result, ran.get(id(grader)))
        result.score = _text(grader, sample, item)
    except InvalidGrader as exc:  # a template naming what this sample or item lacks
        return result.fail(exc.message, invalid_variable_error=True)
    return result


def _text(grader: StringCheckGrader | TextSimilarityGrader, sample: Sample, item: dict[str, Any]) -> float:
    rendered = render(grader.input, sample, item, grader=grader.name)
    reference = render(grader.reference, sample, item, grader=grader.name)
    if isinstance(grader, StringCheckGrader):
        return text.string_check(grader.operation, rendered, reference)
    return text.similarity(grader.evaluation_metric, rendered, reference)


def _python(outcome: Outcome, result: GradeResult) -> GradeResult:
    if outcome.score is not None:
        result.score = outcome.score
        return result
    if outcome.error == "timeout":
        return result.fail(outcome.details or "timed out", unresponsive_reward_error=True)
    return result.fail(
        f"{outcome.error}: {outcome.details}",
        python_grader_runtime_error=True,
        python_grader_runtime_error_details=outcome.details,
    )


def _model(
    grader: ScoreModelGrader | LabelModelGrader,
    sample: Sample,
    item: dict[str, Any],
    grading: Grading,
    result: GradeResult,
    asked: Outcome | scoring.Reply | TuneforgeError | None,
) -> GradeResult:
    """`asked`: the reply grade_many already got for this case, if it did."""
    if grading.scorer is None:
        return result.fail("no model is available to grade here", model_grader_server_error=True)
    reply = asked
    if not isinstance(reply, scoring.Reply | TuneforgeError):
        messages = scoring.render_messages(grader.input, sample, item, grader=grader.name)
        try:
            reply = grading.scorer.complete(grader.model, messages, _params(grader))
        except TuneforgeError as exc:
            reply = exc
    if isinstance(reply, TuneforgeError):
        return result.fail(
            reply.message, model_grader_server_error=True, model_grader_server_error_details=reply.message
        )
    result.token_usage[grader.model] = _usage(reply)
    try:
        if isinstance(grader, LabelModelGrader):
            result.score = 1.0 if scoring.read_label(grader, reply.text) in grader.passing_labels else 0.0
            return result
        result.score, warning = scoring.read_score(grader, reply.text)
    except scoring.ParseFailure as exc:
        return result.fail(str(exc), model_grader_parse_error=True)
    if warning:
        result.warnings.append(f"grader '{grader.name}': {warning}")
    return result


_LABEL_PARAMS = scoring.ModelSamplingParams(
    temperature=0.0
)  # a label grader has no sampling params: be decisive


def _params(grader: ScoreModelGrader | LabelModelGrader) -> scoring.ModelSamplingParams:
    return grader.sampling_params if isinstance(grader, ScoreModelGrader) else _LABEL_PARAMS


def _multi(
    grader: MultiGrader,
    sample: Sample,
    item: dict[str, Any],
    grading: Grading,
    result: GradeResult,
    ran: Ran,
) -> GradeResult:
    named = grader.named()
    tree = formula.parse(grader.calculate_output, set(named), grader=grader.name)
    for key, sub in named.items():
        part = _grade(sub, sample, item, grading, ran)
        result.sub_rewards[key] = part.score
        result.parts[key] = part
        result.warnings.extend(part.warnings)
        result.errors = _merge(result.errors, part.errors)
        for model, usage in part.token_usage.items():
            result.token_usage[model] = _add(result.token_usage.get(model, {}), usage)
    try:
        result.score = formula.evaluate(tree, result.sub_rewards)
    except formula.FormulaError as exc:
        return result.fail(
            f"calculate_output failed on {result.sub_rewards}: {exc}", formula_parse_error=True
        )
    return result


def _merge(into: GradeErrors, other: GradeErrors) -> GradeErrors:
    flags = {name: value for name, value in vars(other).items() if value and not getattr(into, name)}
    return replace(into, **flags)


def _usage(reply: scoring.Reply) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": total,
    }


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in set(a) | set(b)}


def validate(grader: AnyGrader, *, item_fields: set[str] | None = None) -> None:
    """Raise InvalidGrader for what would fail on every sample: a template outside item/sample (or,
    given the data's `item_fields`, naming a field the data lacks), an unavailable metric, python that
    does not compile or defines no `grade`, non-text model input, labels, range, or formula."""
    for sub in _each(grader):
        check_fields(templates(sub), item_fields, grader=sub.name)
        if isinstance(sub, TextSimilarityGrader):
            text.check_metric(sub.evaluation_metric, grader=sub.name)
        if isinstance(sub, PythonGrader):
            _check_python(sub)
        if isinstance(sub, ScoreModelGrader | LabelModelGrader):
            _check_model(sub)
        if isinstance(sub, MultiGrader):
            formula.parse(sub.calculate_output, set(sub.named()), grader=sub.name)


def templates(grader: AnyGrader) -> list[str]:
    """The grader's own template strings (a multi grader's are its sub-graders')."""
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return [grader.input, grader.reference]
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return [scoring._text(message) for message in grader.input]
    return []


def models(grader: AnyGrader) -> list[tuple[str, str]]:
    """(sub-grader name, model) for every model grader in it: the API checks each model exists."""
    return [
        (sub.name, sub.model) for sub in _each(grader) if isinstance(sub, ScoreModelGrader | LabelModelGrader)
    ]


def _each(grader: AnyGrader) -> Iterator[AnyGrader]:
    yield grader
    if isinstance(grader, MultiGrader):
        yield from grader.named().values()


def _check_python(grader: PythonGrader) -> None:
    try:
        tree = ast.parse(grader.source)
    except SyntaxError as exc:
        raise InvalidGrader(
            f"Grader '{grader.name}': source does not compile (line {exc.lineno}: {exc.msg})",
            param="grader.source",
        ) from exc
    if not any(isinstance(node, ast.FunctionDef) and node.name == "grade" for node in tree.body):
        raise InvalidGrader(
            f"Grader '{grader.name}': source must define a function grade(sample, item)",
            param="grader.source",
        )


def _check_model(grader: ScoreModelGrader | LabelModelGrader) -> None:
    if any(isinstance(part, InputOther) for message in grader.input for part in message.parts()):
        raise InvalidGrader(
            f"Grader '{grader.name}': input has an image or audio block; the models served here read text",
            param="grader.input",
        )
    if isinstance(grader, ScoreModelGrader) and not grader.range[0] < grader.range[1]:
        raise InvalidGrader(
            f"Grader '{grader.name}': range must be [low, high] with low < high", param="grader.range"
        )
    if isinstance(grader, LabelModelGrader) and not set(grader.passing_labels) <= set(grader.labels):
        extra = sorted(set(grader.passing_labels) - set(grader.labels))
        raise InvalidGrader(
            f"Grader '{grader.name}': passing_labels {extra} are not among labels",
            param="grader.passing_labels",
        )


__all__ = [
    "EvalMessage",
    "GradeErrors",
    "GradeResult",
    "Grading",
    "grade",
    "grade_many",
    "models",
    "templates",
    "validate",
]

"""Multi graders (formula over sub-scores) and model graders through the Scorer protocol."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from tuneforge.errors import InvalidGrader, NotFound
from tuneforge.graders import AnyGrader, Grader, Grading, Reply, Sample, Turn, grade, grade_many, validate
from tuneforge.graders.models import ModelSamplingParams
from tuneforge.settings import Settings

GRADER: TypeAdapter[AnyGrader] = TypeAdapter(Grader)


class CannedScorer:
    """A Scorer that answers from a table (what a grader model would say), recording what it was asked."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, list[Turn], ModelSamplingParams]] = []

    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        self.asked.append((model, messages, params))
        if model not in self.answers:
            raise NotFound(f"The model '{model}' does not exist", param="model")
        return Reply(self.answers[model], prompt_tokens=10, completion_tokens=2)


def _multi(formula: str) -> AnyGrader:
    return GRADER.validate_python(
        {
            "type": "multi",
            "name": "combined",
            "calculate_output": formula,
            "graders": {
                "exact": {
                    "type": "string_check",
                    "name": "exact",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.answer}}",
                    "operation": "eq",
                },
                "close": {
                    "type": "text_similarity",
                    "name": "close",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.answer}}",
                    "evaluation_metric": "rouge_1",
                },
            },
        }
    )


def test_multi_combines_sub_rewards_with_its_formula() -> None:
    grader = _multi("0.5 * exact + 0.5 * close")
    validate(grader)
    result = grade(grader, Sample.from_text("blue sky"), {"answer": "blue sea"})
    assert result.sub_rewards == {"exact": 0.0, "close": pytest.approx(0.5)}
    assert (result.parts["close"].type, result.parts["close"].name) == ("text_similarity", "close")
    assert result.score == pytest.approx(0.25)


def test_a_formula_that_fails_on_these_scores_is_a_zero_with_formula_parse_error() -> None:
    result = grade(_multi("close / exact"), Sample.from_text("blue sky"), {"answer": "blue sea"})
    assert result.score == 0.0
    assert result.errors.formula_parse_error
    assert "calculate_output" in result.warnings[0]


def test_a_formula_naming_no_sub_grader_is_refused() -> None:
    with pytest.raises(InvalidGrader, match="'exactly'") as refused:
        validate(_multi("exactly + close"))
    assert refused.value.param == "grader.calculate_output"


def _score_model(model: str = "judge", range_: list[float] | None = None) -> AnyGrader:
    return GRADER.validate_python(
        {
            "type": "score_model",
            "name": "judge",
            "model": model,
            "input": [
                {"role": "system", "content": "Score 0 to 1."},
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Q {{item.q}} A {{sample.output_text}}"}],
                },
            ],
            "sampling_params": {"temperature": 0, "seed": 3, "max_completions_tokens": 8},
            "range": range_ or [0, 1],
        }
    )


def test_score_model_renders_the_messages_and_reads_the_score() -> None:
    scorer = CannedScorer({"judge": '{"result": 0.8, "steps": []}'})
    result = grade(_score_model(), Sample.from_text("4"), {"q": "2+2"}, grading=Grading(scorer=scorer))
    assert result.score == pytest.approx(0.8)
    model, messages, params = scorer.asked[0]
    assert model == "judge"
    assert messages == [Turn("system", "Score 0 to 1."), Turn("user", "Q 2+2 A 4")]
    assert (params.temperature, params.seed, params.max_completions_tokens) == (0, 3, 8)
    assert result.token_usage == {"judge": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


class GatheringScorer(CannedScorer):
    """Answers only once `n` calls are waiting together, as an engine batching them would see them."""

    def __init__(self, answers: dict[str, str], n: int) -> None:
        super().__init__(answers)
        self.gathered = threading.Barrier(n, timeout=30)

    def complete(self, model: str, messages: list[Turn], params: ModelSamplingParams) -> Reply:
        self.gathered.wait()  # broken (an error) if the calls came one after another
        return super().complete(model, messages, params)


def test_grade_many_asks_the_grader_model_for_every_case_at_once_with_each_cases_messages() -> None:
    scorer = GatheringScorer({"judge": "0.5"}, n=6)
    cases = [(Sample.from_text(str(k)), {"q": f"q{k}"}) for k in range(6)]
    results = grade_many(_score_model(), cases, grading=Grading(scorer=scorer))
    assert [r.score for r in results] == [0.5] * 6 and not any(r.warnings for r in results)
    asked = sorted(messages[1].content for _, messages, _ in scorer.asked)
    assert asked == sorted(f"Q q{k} A {k}" for k in range(6))


@pytest.mark.parametrize(
    ("answer", "score", "flag"),
    [("Score: 7", 7.0, None), ("12", 10.0, None), ("no idea", 0.0, "model_grader_parse_error")],
)
def test_score_model_parses_plain_numbers_clamps_to_range_and_flags_nonsense(
    answer: str, score: float, flag: str | None
) -> None:
    grading = Grading(scorer=CannedScorer({"judge": answer}))
    result = grade(_score_model(range_=[0, 10]), Sample.from_text("4"), {"q": "2+2"}, grading=grading)
    assert result.score == score
    assert flag is None or getattr(result.errors, flag)


def test_a_model_the_scorer_cannot_reach_is_a_zero_with_server_error() -> None:
    grading = Grading(scorer=CannedScorer({}))
    result = grade(_score_model("gone"), Sample.from_text("4"), {"q": "2+2"}, grading=grading)
    assert result.score == 0.0
    assert result.errors.model_grader_server_error
    assert "gone" in (result.errors.model_grader_server_error_details or "")


def _label_multi() -> AnyGrader:
    return GRADER.validate_python(
        {
            "type": "multi",
            "name": "sentiment",
            "calculate_output": "label",
            "graders": {
                "label": {
                    "type": "label_model",
                    "name": "label",
                    "model": "judge",
                    "input": [{"role": "user", "content": "Classify: {{sample.output_text}}"}],
                    "labels": ["positive", "neutral", "negative"],
                    "passing_labels": ["positive"],
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("answer", "score"),
    [('{"result": "positive"}', 1.0), ("Negative", 0.0), ("I think it is positive.", 1.0), ("unsure", 0.0)],
)
def test_label_model_passes_on_passing_labels(answer: str, score: float) -> None:
    result = grade(
        _label_multi(),
        Sample.from_text("great!"),
        {},
        grading=Grading(scorer=CannedScorer({"judge": answer})),
    )
    assert result.score == score


def test_label_model_with_passing_labels_outside_labels_is_refused() -> None:
    grader = _label_multi().model_copy(deep=True)
    label = grader.named()["label"]  # type: ignore[union-attr]
    label.passing_labels = ["great"]
    with pytest.raises(InvalidGrader, match="great") as refused:
        validate(grader)
    assert refused.value.param == "grader.passing_labels"


def test_label_model_is_not_a_top_level_grader_as_in_the_spec() -> None:
    with pytest.raises(ValueError, match="label_model"):
        GRADER.validate_python(
            {
                "type": "label_model",
                "name": "x",
                "model": "m",
                "input": [],
                "labels": ["a"],
                "passing_labels": ["a"],
            }
        )


def test_grading_from_settings_denies_the_data_dir_and_local_stores_kept_elsewhere(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        blob_url=str(tmp_path / "blobs"),
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        grader_wall_s=3,
        grader_memory_mb=256,
    )
    grading = Grading.from_settings(settings)
    assert grading.deny_paths == (tmp_path / "data", tmp_path / "blobs", tmp_path / "meta.db")
    assert (grading.sandbox.wall_s, grading.sandbox.memory_bytes) == (3, 256 << 20)
    remote = settings.model_copy(update={"blob_url": "s3://bucket/tf", "database_url": "postgresql://h/db"})
    assert Grading.from_settings(remote).deny_paths == (tmp_path / "data",)

"""string_check and text_similarity against known values, BLEU and ROUGE against the reference libraries."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tuneforge.errors import InvalidGrader
from tuneforge.graders import Sample, grade
from tuneforge.graders.models import StringCheckGrader, TextSimilarityGrader
from tuneforge.graders.text import check_metric


@pytest.mark.parametrize(
    ("operation", "output", "reference", "score"),
    [
        ("eq", "Paris", "Paris", 1.0),
        ("eq", "paris", "Paris", 0.0),
        ("ne", "Lyon", "Paris", 1.0),
        ("ne", "Paris", "Paris", 0.0),
        ("like", "It is Paris.", "Paris", 1.0),
        ("like", "It is paris.", "Paris", 0.0),
        ("ilike", "IT IS PARIS.", "paris", 1.0),
        ("ilike", "It is Lyon.", "paris", 0.0),
    ],
)
def test_string_check(operation: str, output: str, reference: str, score: float) -> None:
    grader = StringCheckGrader.model_validate(
        {
            "type": "string_check",
            "name": "city",
            "input": "{{sample.output_text}}",
            "reference": "{{item.city}}",
            "operation": operation,
        }
    )
    result = grade(grader, Sample.from_text(output), {"city": reference})
    assert result.score == score
    assert result.warnings == []


def _similarity(metric: str, output: str, reference: str) -> float:
    grader = TextSimilarityGrader(
        name="sim",
        input="{{sample.output_text}}",
        reference="{{item.answer}}",
        evaluation_metric=metric,  # type: ignore[arg-type]
    )
    return grade(grader, Sample.from_text(output), {"answer": reference}).score


HYPOTHESIS = "the quick brown fox jumps over the lazy dog"
REFERENCE = "the quick brown fox jumped over the lazy dog today"


def test_bleu_is_sacrebleus_sentence_bleu() -> None:
    expected = sacrebleu.sentence_bleu(HYPOTHESIS, [REFERENCE]).score / 100
    assert 0 < expected < 1
    assert _similarity("bleu", HYPOTHESIS, REFERENCE) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("metric", "kind"), [("rouge_1", "rouge1"), ("rouge_2", "rouge2"), ("rouge_l", "rougeL")]
)
def test_rouge_is_rouge_scores_f_measure(metric: str, kind: str) -> None:
    expected = rouge_scorer.RougeScorer([kind]).score(REFERENCE, HYPOTHESIS)[kind].fmeasure
    assert 0 < expected < 1
    assert _similarity(metric, HYPOTHESIS, REFERENCE) == pytest.approx(expected)


def test_identical_texts_score_one_and_fuzzy_match_degrades_gracefully() -> None:
    for metric in ("bleu", "gleu", "rouge_1", "rouge_5", "rouge_l", "fuzzy_match"):
        assert _similarity(metric, REFERENCE, REFERENCE) == pytest.approx(1.0)
    near, far = _similarity("fuzzy_match", "Pariss", "Paris"), _similarity("fuzzy_match", "Tokyo", "Paris")
    assert 0.8 < near < 1.0
    assert far < 0.5


def test_cosine_and_unavailable_meteor_are_refused_with_their_reason() -> None:
    with pytest.raises(InvalidGrader, match="embedding model") as cosine:
        check_metric("cosine", grader="sim")
    assert cosine.value.param == "grader.evaluation_metric"
    try:
        check_metric("meteor", grader="sim")
    except InvalidGrader as exc:  # no WordNet data on this machine: refused, never faked
        assert "WordNet" in exc.message
    else:
        assert 0 <= _similarity("meteor", HYPOTHESIS, REFERENCE) <= 1

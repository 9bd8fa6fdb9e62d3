"""Every reported number equals the library's own computation on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

from tuneforge.evaluation.metrics import (
    classification_metrics,
    extraction_metrics,
    generation_metrics,
    parse_entities,
)

LABELS = ["cat", "dog", "bird"]


def _random_case(seed: int, n: int = 60) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[truth] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [LABELS[t] for t in truth], probs


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_matches_scikit_learn(seed: int) -> None:
    gold, probs = _random_case(seed)
    truth = np.array([LABELS.index(g) for g in gold])
    pred = probs.argmax(axis=1)

    report = classification_metrics(gold, probs, LABELS)

    assert report["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    for average in ("macro", "weighted"):
        assert report[average]["precision"] == pytest.approx(
            skm.precision_score(truth, pred, average=average, zero_division=0)
        )
        assert report[average]["recall"] == pytest.approx(
            skm.recall_score(truth, pred, average=average, zero_division=0)
        )
        assert report[average]["f1"] == pytest.approx(
            skm.f1_score(truth, pred, average=average, zero_division=0)
        )
    per_f1 = skm.f1_score(truth, pred, average=None, labels=[0, 1, 2], zero_division=0)
    assert [report["per_class"][label]["f1"] for label in LABELS] == pytest.approx(list(per_f1))
    assert [report["per_class"][label]["support"] for label in LABELS] == [gold.count(x) for x in LABELS]
    assert (
        report["confusion_matrix"]["matrix"] == skm.confusion_matrix(truth, pred, labels=[0, 1, 2]).tolist()
    )
    assert report["calibration"]["log_loss"] == pytest.approx(skm.log_loss(truth, probs, labels=[0, 1, 2]))


def test_calibration_error_and_brier_match_a_direct_computation() -> None:
    gold, probs = _random_case(3, n=200)
    truth = np.array([LABELS.index(g) for g in gold])
    cal = classification_metrics(gold, probs, LABELS)["calibration"]

    conf, right = probs.max(axis=1), probs.argmax(axis=1) == truth
    ece = 0.0
    for lo in np.arange(0.0, 1.0, 0.1):
        members = (conf > lo) & (conf <= lo + 0.1 + 1e-12)
        if members.any():
            ece += members.mean() * abs(right[members].mean() - conf[members].mean())
    assert cal["ece"] == pytest.approx(ece)
    assert sum(b["count"] for b in cal["bins"]) == len(gold)
    brier = np.mean([np.sum((probs[i] - np.eye(3)[truth[i]]) ** 2) for i in range(len(gold))])
    assert cal["brier"] == pytest.approx(brier)


def test_binary_brier_is_twice_scikit_learns_positive_class_brier() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=50)
    p1 = rng.random(50)
    probs = np.stack([1 - p1, p1], axis=1)
    cal = classification_metrics([["no", "yes"][t] for t in y], probs, ["no", "yes"])["calibration"]
    # Summed over both classes, the multiclass Brier score counts the binary one twice.
    assert cal["brier"] == pytest.approx(2 * skm.brier_score_loss(y, p1))


def test_a_perfect_confident_classifier_is_calibrated() -> None:
    gold = ["cat", "dog", "bird", "cat"]
    probs = np.eye(3)[[0, 1, 2, 0]]
    report = classification_metrics(gold, probs, LABELS)
    assert report["accuracy"] == 1.0 and report["macro"]["f1"] == 1.0
    assert report["calibration"]["ece"] == pytest.approx(0.0)
    assert report["calibration"]["brier"] == pytest.approx(0.0)


def test_generation_matches_sacrebleu_and_rouge_score() -> None:
    refs = ["the cat sat on the mat", "paris is the capital of france", "hello world", "running fast"]
    preds = ["the cat sat on a mat ", "paris is the capital of france", "goodbye world", "runs fast"]

    report = generation_metrics(preds, refs)

    stripped = [p.strip() for p in preds]
    assert report["exact_match"] == pytest.approx(0.25)
    assert report["bleu"] == pytest.approx(sacrebleu.corpus_bleu(stripped, [refs]).score)
    assert report["chrf"] == pytest.approx(sacrebleu.corpus_chrf(stripped, [refs]).score)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(stripped, refs, strict=True)])
    assert report["rougeL"]["f1"] == pytest.approx(expected)
    assert 0 < report["bleu"] < 100


def test_entity_parsing_accepts_lists_and_json() -> None:
    assert parse_entities(" Alice, Bob;carol\n- Dave") == {"alice", "bob", "carol", "dave"}
    assert parse_entities('["Acme Corp", "Berlin"]') == {"acme corp", "berlin"}
    assert parse_entities("  ") == set()


def test_extraction_matches_scikit_learn_micro_average() -> None:
    refs = ["Alice, Bob", "Paris", "Acme, Berlin, Bob", "none"]
    preds = ["alice", "Paris, London", "Acme, Bob, Berlin", "x, y"]

    report = extraction_metrics(preds, refs)

    sets_true = [parse_entities(r) for r in refs]
    sets_pred = [parse_entities(p) for p in preds]
    binarizer = MultiLabelBinarizer().fit(sets_true + sets_pred)
    y_true, y_pred = binarizer.transform(sets_true), binarizer.transform(sets_pred)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((p, r, f))
    assert report["exact_set_match"] == pytest.approx(0.25)
    assert report["entities"] == {"predicted": 8, "gold": 7, "correct": 5}

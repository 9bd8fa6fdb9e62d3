"""Metrics over predictions, as plain JSON-able dicts. Pure functions: no model, no I/O. The numbers come
from scikit-learn, sacrebleu and rouge-score; only the calibration bins and entity parsing are our own."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

CALIBRATION_BINS = 10  # equal-width bins of top-label confidence, as in Guo et al. (2017)


def classification_metrics(
    gold: Sequence[str], probabilities: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """`probabilities[i, k]`: the model's probability of `labels[k]` for example i (rows sum to 1); the
    prediction is the most probable label. Every gold label must be one of `labels`."""
    from sklearn import metrics as skm

    k = len(labels)
    truth = np.array([labels.index(g) for g in gold])
    predicted = probabilities.argmax(axis=1)
    indices = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    out: dict[str, Any] = {
        "n": len(gold),
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "per_class": {
            labels[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in indices
        },
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            truth, predicted, labels=indices, average=average, zero_division=0
        )
        out[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    matrix = skm.confusion_matrix(truth, predicted, labels=indices)
    out["confusion_matrix"] = {"labels": list(labels), "matrix": matrix.tolist()}  # rows: gold
    out["calibration"] = calibration(truth, probabilities)
    return out


def calibration(truth: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """How far the label probabilities are from the observed frequencies: expected and maximum
    calibration error over top-label confidence bins, multiclass Brier score, and log loss."""
    from sklearn import metrics as skm

    n, k = probabilities.shape
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi] bins
    table, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        gap = abs(acc - conf)
        ece += members.sum() / n * gap
        mce = max(mce, gap)
        table.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(members.sum()),
                "confidence": conf,
                "accuracy": acc,
            }
        )
    onehot = np.eye(k)[truth]
    return {
        "ece": float(ece),
        "mce": float(mce),
        "brier": float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))),
        "log_loss": float(skm.log_loss(truth, probabilities, labels=list(range(k)))),
        "mean_confidence": float(confidence.mean()),
        "bins": table,
    }


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Exact match (after trimming surrounding whitespace), corpus BLEU and chrF (sacrebleu), and mean
    ROUGE-L precision, recall and F1 (rouge-score, with stemming)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = [p.strip() for p in predictions]
    refs = [r.strip() for r in references]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, pred)["rougeL"] for pred, ref in zip(preds, refs, strict=True)]
    return {
        "n": len(preds),
        "exact_match": float(np.mean([p == r for p, r in zip(preds, refs, strict=True)])) if preds else 0.0,
        "bleu": float(sacrebleu.corpus_bleu(preds, [refs]).score),
        "chrf": float(sacrebleu.corpus_chrf(preds, [refs]).score),
        "rougeL": {
            "precision": float(np.mean([s.precision for s in rouge])) if rouge else 0.0,
            "recall": float(np.mean([s.recall for s in rouge])) if rouge else 0.0,
            "f1": float(np.mean([s.fmeasure for s in rouge])) if rouge else 0.0,
        },
    }


_SEPARATORS = re.compile(r"[\n;,|]")


def parse_entities(text: str) -> set[str]:
    """The entities a completion lists: a JSON array of strings, or items separated by commas, semicolons,
    bars or new lines. Compared case-insensitively, surrounding whitespace and bullets ignored."""
    text = text.strip()
    items: list[Any] | None = None
    if text.startswith("["):
        try:
            loaded = json.loads(text)
            items = loaded if isinstance(loaded, list) else None
        except ValueError:
            items = None
    if items is None:
        items = _SEPARATORS.split(text)
    entities = {str(item).strip().lstrip("-*• ").strip().casefold() for item in items}
    return {e for e in entities if e}


def extraction_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Entity-level precision, recall and F1, micro-averaged over all entities of all examples (an entity
    counts once per example), and the share of examples whose entity set is exactly right."""
    predicted = [parse_entities(p) for p in predictions]
    gold = [parse_entities(r) for r in references]
    true_pos = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    n_pred, n_gold = sum(map(len, predicted)), sum(map(len, gold))
    precision = true_pos / n_pred if n_pred else 0.0
    recall = true_pos / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(gold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "exact_set_match": float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
        if gold
        else 0.0,
        "entities": {"predicted": n_pred, "gold": n_gold, "correct": true_pos},
    }

"""Metrics with OpenAI's results-CSV column names: losses, greedy token and sequence accuracy over
completion tokens, and the classification columns computed from the model's probabilities of the labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from tuneforge.training.batches import Batch

RESULTS_COLUMNS = [
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_sequence_accuracy",
    "training_token_accuracy",
    "validation_loss",
    "validation_sequence_accuracy",
    "validation_token_accuracy",
]
TRAINING_COLUMNS = RESULTS_COLUMNS[:6]  # a run without a validation file

# OpenAI's metric names (checkpoint `metrics`, `metrics` events) for our results-CSV columns. Every
# validation pass here covers the whole validation file, so `valid_*` and `full_valid_*` are the same.
_OPENAI_NAMES = {
    "train_loss": "training_loss",
    "train_mean_token_accuracy": "training_token_accuracy",
    "valid_loss": "validation_loss",
    "valid_mean_token_accuracy": "validation_token_accuracy",
    "full_valid_loss": "validation_loss",
    "full_valid_mean_token_accuracy": "validation_token_accuracy",
}


# DPO's and reinforcement's columns, named as OpenAI names them (`train_…`, `valid_…`).
_METHOD_METRICS = ("_reward", "_chosen", "_rejected", "_full_marks", "_kl", "_sample_length")


@dataclass
class Tally:
    """Sums over one or more batches, turned into the three metrics at the end."""

    loss_sum: float = 0.0
    tokens: int = 0  # completion tokens
    correct: int = 0
    sequences: int = 0
    sequences_right: int = 0

    def add(self, batch: Batch, logits: torch.Tensor, token_loss: torch.Tensor) -> None:
        with torch.no_grad():
            mask = batch.target
            right = (logits.argmax(-1) == batch.labels) & mask
            self.loss_sum += float(token_loss[mask].sum())
            self.tokens += int(mask.sum())
            self.correct += int(right.sum())
            has_target = mask.any(dim=1)
            all_right = (right | ~mask).all(dim=1) & has_target
            self.sequences += int(has_target.sum())
            self.sequences_right += int(all_right.sum())

    def as_row(self, prefix: str) -> dict[str, float]:
        if not self.tokens:
            return {}
        return {
            f"{prefix}_loss": self.loss_sum / self.tokens,
            f"{prefix}_sequence_accuracy": self.sequences_right / max(1, self.sequences),
            f"{prefix}_token_accuracy": self.correct / self.tokens,
        }


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position, [B, T], in float32 whatever the autocast dtype."""
    flat = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return flat.view(labels.shape)


def weighted_loss(token_loss: torch.Tensor, weights: torch.Tensor, total_weight: float) -> torch.Tensor:
    """OpenAI's objective: completion tokens count fully, prompt tokens times prompt_loss_weight. Dividing
    by the whole step's weight (not the micro-batch's) makes accumulated micro-batches equal one batch."""
    return (token_loss * weights).sum() / total_weight


@dataclass
class ClassificationSpec:
    labels: list[str]
    label_ids: list[list[int]]  # each label's completion tokens (with eos)
    positive_class: str | None
    betas: list[float] = field(default_factory=list)


def classification_metrics(
    spec: ClassificationSpec, gold: Sequence[str], probabilities: np.ndarray
) -> dict[str, float]:
    """`probabilities[i, k]`: the model's probability of label k for example i (renormalised over labels)."""
    truth = np.array([spec.labels.index(g) if g in spec.labels else -1 for g in gold])
    predicted = probabilities.argmax(axis=1)
    out = {"classification/accuracy": float(np.mean(predicted == truth))}
    if spec.positive_class is None:
        out["classification/weighted_f1_score"] = float(
            skm.f1_score(truth, predicted, average="weighted", zero_division=0)
        )
        return out
    positive = spec.labels.index(spec.positive_class)
    y_true = (truth == positive).astype(int)
    y_pred = (predicted == positive).astype(int)
    score = probabilities[:, positive]
    out["classification/precision"] = float(skm.precision_score(y_true, y_pred, zero_division=0))
    out["classification/recall"] = float(skm.recall_score(y_true, y_pred, zero_division=0))
    if 0 < y_true.sum() < len(y_true):  # both classes present, else AUROC is undefined
        out["classification/auroc"] = float(skm.roc_auc_score(y_true, score))
        out["classification/auprc"] = float(skm.average_precision_score(y_true, score))
    for beta in [1.0, *spec.betas]:
        out[f"classification/f{beta:g}" if beta != 1.0 else "classification/f1.0"] = float(
            skm.fbeta_score(y_true, y_pred, beta=beta, zero_division=0)
        )
    return out


def openai_names(row: dict[str, float], total_steps: int) -> dict[str, float | int]:
    """A results row under OpenAI's names, plus its classification columns as they are."""
    named: dict[str, float | int] = {"step": int(row.get("step", 0)), "total_steps": total_steps}
    named.update({ours: row[theirs] for ours, theirs in _OPENAI_NAMES.items() if theirs in row})
    for key, value in row.items():
        if key.startswith("classification/"):
            named[key] = value
        elif any(part in key for part in _METHOD_METRICS):  # train_reward_accuracy (DPO), train_kl (RFT)
            named[key.replace("training_", "train_").replace("validation_", "valid_")] = value
    return named


def finite(row: dict[str, float]) -> dict[str, float]:
    """Drop NaN/inf so every event stays valid JSON."""
    return {k: v for k, v in row.items() if not (isinstance(v, float) and not math.isfinite(v))}

"""Resolve "auto" hyperparameters: OpenAI's documented rules first, then the departures that
bench/quality.py showed to train the built-in models better (docs/training.md explains each)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Method = Literal["lora", "full"]

# Learning rate that a multiplier of 1.0 means, per method and kind of base model. Randomly initialised
# built-ins need the large steps of pre-training; pretrained models need small ones not to forget.
BASE_LEARNING_RATE: dict[tuple[Method, bool], float] = {
    ("full", True): 1e-2,  # built-in, full fine-tuning
    ("lora", True): 2e-2,  # built-in, LoRA (only the adapters move, so larger steps)
    ("full", False): 1e-4,  # pretrained, full
    ("lora", False): 2e-3,  # pretrained, LoRA
}
LORA_ABOVE_PARAMS = 100_000_000  # pretrained models larger than this train LoRA adapters by default
MIN_BATCH_BUILTIN = 8  # fewer rows per step leave two CPU cores idle and make the loss noisy
MAX_BATCH = 256
AUTO_EPOCHS = 4
# Fewest optimizer steps "auto" gives a built-in (random) model. bench/quality.py: classifiers reach within
# a point of their 1,000-step score at 400 steps; copying names into JSON needs 1,000 (exact match 0.11 at
# 500 steps, 0.94 at 1,000: the model must first learn to copy at all).
MIN_STEPS = 400
MIN_STEPS_GENERATION = 1000
MAX_CLASSES = 50  # more distinct completions than this is generation, not classification
MAX_AUTO_EPOCHS = 25


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    prompt_loss_weight: float
    method: Method
    seed: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    warmup_steps: int
    weight_decay: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_batch_size(n_examples: int, builtin: bool) -> int:
    """OpenAI: about 0.2% of the training examples, capped at 256."""
    size = min(MAX_BATCH, max(1, round(0.002 * n_examples)))
    return max(size, min(MIN_BATCH_BUILTIN, n_examples)) if builtin else size


def auto_multiplier(batch_size: int) -> float:
    """OpenAI: 0.05, 0.1 or 0.2 depending on the batch size (larger batches take larger steps)."""
    if batch_size < 8:
        return 0.05
    return 0.1 if batch_size < 32 else 0.2


def auto_epochs(n_examples: int, batch_size: int, builtin: bool, classifier: bool = True) -> int:
    """OpenAI's 4; built-ins learn from nothing, so they get the epochs to reach their minimum steps."""
    if not builtin:
        return AUTO_EPOCHS
    steps_per_epoch = max(1, -(-n_examples // batch_size))
    min_steps = MIN_STEPS if classifier else MIN_STEPS_GENERATION
    return max(AUTO_EPOCHS, min(MAX_AUTO_EPOCHS, -(-min_steps // steps_per_epoch)))


def looks_like_classifier(completions: list[str]) -> bool:
    """Few distinct completions, each used again and again: class labels, not free text."""
    distinct = len(set(completions))
    return bool(completions) and distinct <= max(2, min(MAX_CLASSES, len(completions) // 4))


def auto_method(builtin: bool, n_params: int) -> Method:
    return "full" if builtin or n_params <= LORA_ABOVE_PARAMS else "lora"


def reasons(hp: Hyperparameters, explicit: set[str], builtin: bool) -> list[str]:
    """One line per resolved "auto" value, for the job's first events."""
    lines = []
    if "method" not in explicit:
        lines.append(
            f"method={hp.method}: "
            + (
                "built-in random models train every weight"
                if builtin
                else "full below 100M parameters, LoRA above"
            )
        )
    if "batch_size" not in explicit:
        lines.append(
            f"batch_size={hp.batch_size}: 0.2% of the training examples, capped at 256"
            + (f", at least {MIN_BATCH_BUILTIN} on built-ins" if builtin else "")
        )
    if "learning_rate_multiplier" not in explicit:
        lines.append(
            f"learning_rate_multiplier={hp.learning_rate_multiplier}: by batch size "
            f"(learning rate {hp.learning_rate:.2e})"
        )
    if "n_epochs" not in explicit:
        lines.append(
            f"n_epochs={hp.n_epochs}: 4, more on built-ins for small files (at least {MIN_STEPS} steps "
            f"for a classifier, {MIN_STEPS_GENERATION} for generation)"
        )
    return lines

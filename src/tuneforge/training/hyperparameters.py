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
MIN_STEPS = 400  # bench/quality.py: 400 steps beat 200 on all three tasks (classifiers and copying)
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


def auto_epochs(n_examples: int, batch_size: int, builtin: bool) -> int:
    """OpenAI's 4; built-ins learn from nothing, so small files get the epochs to reach MIN_STEPS."""
    if not builtin:
        return AUTO_EPOCHS
    steps_per_epoch = max(1, -(-n_examples // batch_size))
    return max(AUTO_EPOCHS, min(MAX_AUTO_EPOCHS, -(-MIN_STEPS // steps_per_epoch)))


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
            f"n_epochs={hp.n_epochs}: 4, more on built-ins for small files (at least {MIN_STEPS} steps)"
        )
    return lines

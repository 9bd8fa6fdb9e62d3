"""Resolve "auto" hyperparameters: OpenAI's documented rules first, then the departures that
bench/quality.py showed to train the built-in models better (docs/training.md explains each)."""

from __future__ import annotations

from tuneforge.spec import AUTO, DpoHyperparameters, ResolvedHyperparameters, TrainSpec, Tuning

# Learning rate that a multiplier of 1.0 means, per method and kind of base model. Randomly initialised
# built-ins need the large steps of pre-training; pretrained models need small ones not to forget.
BASE_LEARNING_RATE: dict[tuple[Tuning, bool], float] = {
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
# "auto" epochs with a validation file stop once this many validation passes in a row (about a tenth of the
# run apart) find no lower validation loss, and keep the best weights seen (docs/training.md).
EARLY_STOPPING_PATIENCE = 3
LORA_RULE = "full below 100M parameters, LoRA above"
DPO_BETA = 0.1  # OpenAI's default
# DPO moves an already fine-tuned model a little: its steps are this fraction of supervised ones
# (bench/quality.py's preference task; docs/training.md).
DPO_LEARNING_RATE_FACTOR = 0.1
# DPO keeps OpenAI's 4 epochs even on built-ins: on the reply-style task (docs/training.md) 20 steps made
# every held-out reply the preferred style, as did 80, while 125 over-optimised (replies degenerate).


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


def auto_tuning(builtin: bool, n_params: int) -> Tuning:
    return "full" if builtin or n_params <= LORA_ABOVE_PARAMS else "lora"


def resolve(
    spec: TrainSpec, *, n_examples: int, builtin: bool, classifier: bool, auto_tuning: Tuning, seed: int
) -> ResolvedHyperparameters:
    """Every "auto" of the spec made concrete for a file of `n_examples`, with the reason for each."""
    asked = spec.hyperparameters
    dpo = isinstance(asked, DpoHyperparameters)
    beta: float | None = None
    if isinstance(asked, DpoHyperparameters):
        plw, beta = 0.0, DPO_BETA if asked.beta == AUTO else asked.beta  # DPO scores the outputs alone
    else:
        plw = asked.prompt_loss_weight
    tuning: Tuning = auto_tuning if spec.tuning == AUTO else spec.tuning
    batch_size = min(
        auto_batch_size(n_examples, builtin) if asked.batch_size == AUTO else asked.batch_size, n_examples
    )
    multiplier = (
        auto_multiplier(batch_size)
        if asked.learning_rate_multiplier == AUTO
        else asked.learning_rate_multiplier
    )
    if asked.n_epochs != AUTO:
        epochs = asked.n_epochs
    elif dpo:
        epochs = AUTO_EPOCHS
    else:
        epochs = auto_epochs(n_examples, batch_size, builtin, classifier)
    steps = epochs * -(-n_examples // batch_size)
    # Stopping early needs a validation file; an explicit n_epochs asks for every step of it.
    early_stop = asked.n_epochs == AUTO and not dpo and spec.validation_file is not None
    learning_rate = (
        multiplier * BASE_LEARNING_RATE[(tuning, builtin)] * (DPO_LEARNING_RATE_FACTOR if dpo else 1)
    )
    reasons = {
        "tuning": f"{tuning}: " + ("built-in random models train every weight" if builtin else LORA_RULE),
        "batch_size": f"{batch_size}: 0.2% of the training examples, capped at {MAX_BATCH}"
        + (f", at least {MIN_BATCH_BUILTIN} on built-ins" if builtin else ""),
        "learning_rate_multiplier": f"{multiplier}: by batch size (learning rate {learning_rate:.2e}"
        + (f", {DPO_LEARNING_RATE_FACTOR}x the supervised rate for DPO)" if dpo else ")"),
        "n_epochs": f"{epochs}: "
        + (
            f"{AUTO_EPOCHS}, as OpenAI (longer DPO runs over-optimise)"
            if dpo
            else f"{AUTO_EPOCHS}, more on built-ins for small files (at least {MIN_STEPS} steps for a "
            f"classifier, {MIN_STEPS_GENERATION} for generation)"
            + (
                f"; stops early once {EARLY_STOPPING_PATIENCE} validation passes in a row find no lower "
                "validation loss, keeping the best weights seen"
                if early_stop
                else ""
            )
        ),
        "beta": f"{DPO_BETA}: OpenAI's default",
    }
    chosen = {"tuning": spec.tuning, **asked.model_dump()}
    return ResolvedHyperparameters(
        n_epochs=epochs,
        batch_size=batch_size,
        learning_rate_multiplier=multiplier,
        learning_rate=learning_rate,
        prompt_loss_weight=plw,
        tuning=tuning,
        seed=seed,
        lora_r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        warmup_steps=min(100, max(1, steps // 20)),  # a short ramp keeps Adam's first steps sane
        weight_decay=0.0,  # fine-tunes are short; decay only pulls weights back toward zero
        total_steps=steps,
        beta=beta,
        early_stopping_patience=EARLY_STOPPING_PATIENCE if early_stop else None,
        reasons={key: line for key, line in reasons.items() if chosen.get(key) == AUTO},
    )

"""Resolve "auto" hyperparameters: OpenAI's documented rules first, then the departures that
bench/quality.py showed to train the built-in models better (docs/training.md explains each)."""

from __future__ import annotations

from typing import Any

from tuneforge.spec import (
    AUTO,
    DpoHyperparameters,
    ReinforcementHyperparameters,
    ResolvedHyperparameters,
    SupervisedHyperparameters,
    TrainSpec,
    Tuning,
)

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
# Fewest optimizer steps "auto" gives a built-in (random) model. bench/quality.py (docs/training.md): a
# classifier at multiplier 0.03 scores 0.967 and 0.963 (binary, four topics) at 300 steps, against 0.871 and
# 0.892 at the earlier 400 steps of 0.1; at 240 steps its best-validation-loss weights still swing (binary
# 0.883 kept, 0.954 at the last step). Fifty numbered labels need more (accuracy 0.150 at 300 steps, 0.975
# at 1,008), so a classifier gets STEPS_PER_CLASS steps a label where that is more than 300 (measured at 2,
# 4 and 50 labels; between them the line is drawn, not measured). Copying unseen names out of order notes
# into JSON needs 2,000 at batch 8 (field accuracy 0.775 at 1,000 steps, 0.940 at 2,000; batch 4 or 2 at the
# same epochs learnt less, and multiplier 0.2 or 0.3 broke the run): the model must first learn to copy.
MIN_STEPS = 300
STEPS_PER_CLASS = 20
MIN_STEPS_GENERATION = 2000
# A classifier on a built-in takes this share of OpenAI's multiplier (0.03 at batch 8-31): at 240 steps
# 0.03 beat 0.05 and 0.1 on both classifiers of bench/quality.py. Measured on the built-ins only.
CLASSIFIER_LR_FACTOR = 0.3
MAX_CLASSES = 50  # more distinct completions than this is generation, not classification
MAX_AUTO_EPOCHS = 25  # for a classifier: the cap of the earlier rule, kept (not re-measured)
MAX_AUTO_EPOCHS_GENERATION = 40  # 400 rows of extraction need the 40 epochs (2,000 steps at batch 8)
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
# Reinforcement (GRPO): a step is RFT_BATCH prompts, each sampled RFT_SAMPLES times at compute_multiplier 1.
RFT_BATCH = 8  # 64 samples a step: enough groups that one lucky prompt does not steer the update
RFT_SAMPLES = 8  # group size: a group whose samples all score alike teaches nothing, so not fewer
RFT_EPOCHS = 4  # OpenAI's supervised default; the reward curve says when more would help
RFT_LEARNING_RATE_FACTOR = 0.1  # like DPO, RFT nudges a model that already answers: small steps
RFT_KL = 0.04  # the KL penalty's weight (DeepSeekMath's GRPO); keeps answers close to the start's
RFT_CLIP = 0.2  # PPO's clip range of the policy ratio
RFT_TEMPERATURE = 1.0  # samples from the model's own distribution: the ratios are then exact
RFT_EVALS_PER_RUN = 10
RFT_EVAL_SAMPLES = 4  # per validation prompt: the score is then a mean over four draws
# The longest sampled answer by reasoning_effort: the models here have no hidden reasoning phase, so
# effort buys only room for a longer answer.
MAX_SAMPLE_TOKENS = {"low": 128, "default": 256, "medium": 256, "high": 512}


def auto_batch_size(n_examples: int, builtin: bool) -> int:
    """OpenAI: about 0.2% of the training examples, capped at 256."""
    size = min(MAX_BATCH, max(1, round(0.002 * n_examples)))
    return max(size, min(MIN_BATCH_BUILTIN, n_examples)) if builtin else size


def batch_reason(batch_size: int, n_examples: int, builtin: bool) -> str:
    """Why `batch_size`, in the numbers of this file."""
    share = round(0.002 * n_examples)
    if batch_size == n_examples and batch_size < max(MIN_BATCH_BUILTIN if builtin else 1, share):
        return f"the whole file of {n_examples} examples in one batch"
    if builtin and batch_size == MIN_BATCH_BUILTIN and share < MIN_BATCH_BUILTIN:
        return (
            f"the least on built-ins (0.2% of the {n_examples} training examples, OpenAI's "
            f"rule, would be {max(1, share)})"
        )
    if batch_size == MAX_BATCH and share > MAX_BATCH:
        return f"0.2% of the {n_examples} training examples, capped at {MAX_BATCH}"
    return f"0.2% of the {n_examples} training examples"


def auto_multiplier(
    batch_size: int, builtin: bool = False, classifier: bool = False, steps: int = 0
) -> float:
    """OpenAI: 0.05, 0.1 or 0.2 depending on the batch size (larger batches take larger steps); a built-in
    learning a classifier over at least its MIN_STEPS takes a third of that (docs/training.md). Shorter
    runs keep OpenAI's: the smaller rate needs the steps (60 and 120 steps learnt less at 0.03)."""
    openai = 0.05 if batch_size < 8 else 0.1 if batch_size < 32 else 0.2
    slow = builtin and classifier and steps >= MIN_STEPS
    return round(openai * CLASSIFIER_LR_FACTOR, 4) if slow else openai


def min_steps(classes: int) -> int:
    """The fewest steps a built-in gets: a classifier's grow with its labels; 0 classes is generation."""
    return max(MIN_STEPS, STEPS_PER_CLASS * classes) if classes else MIN_STEPS_GENERATION


def auto_epochs(n_examples: int, batch_size: int, builtin: bool, classes: int) -> int:
    """OpenAI's 4; built-ins learn from nothing, so they get the epochs to reach their minimum steps."""
    if not builtin:
        return AUTO_EPOCHS
    steps_per_epoch = max(1, -(-n_examples // batch_size))
    most = MAX_AUTO_EPOCHS if classes else MAX_AUTO_EPOCHS_GENERATION
    return max(AUTO_EPOCHS, min(most, -(-min_steps(classes) // steps_per_epoch)))


def epochs_reason(epochs: int, steps_per_epoch: int, builtin: bool, classes: int) -> str:
    """Why `epochs`, in the numbers of this run: its steps, and the rule that set them."""
    steps = epochs * steps_per_epoch
    run = f"{steps} steps of {steps_per_epoch} per epoch"
    if not builtin:
        return f"OpenAI's default ({run})"
    least = min_steps(classes)
    kind = "generation task" if not classes else f"classifier of {classes} labels"
    if epochs == AUTO_EPOCHS and AUTO_EPOCHS * steps_per_epoch >= least:
        return f"OpenAI's default; its {run} reach the {least} a built-in gets for a {kind}"
    if steps < least:
        return f'the most "auto" gives ({run}), short of the {least} steps a built-in gets for a {kind}'
    return f"{run}, the fewest epochs for the {least} steps a built-in gets for a {kind}"


def looks_like_classifier(completions: list[str]) -> bool:
    """Few distinct completions, each used again and again: class labels, not free text."""
    return count_classes(completions) > 0


def count_classes(completions: list[str]) -> int:
    """How many labels a classifier's completions use; 0 when they are free text."""
    distinct = len(set(completions))
    return distinct if completions and distinct <= max(2, min(MAX_CLASSES, len(completions) // 4)) else 0


def auto_tuning(builtin: bool, n_params: int) -> Tuning:
    return "full" if builtin or n_params <= LORA_ABOVE_PARAMS else "lora"


def resolve(
    spec: TrainSpec, *, n_examples: int, builtin: bool, classes: int, auto_tuning: Tuning, seed: int
) -> ResolvedHyperparameters:
    """Every "auto" of the spec made concrete for a file of `n_examples` whose completions use `classes`
    labels (0: free text), with the reason for each."""
    asked = spec.hyperparameters
    dpo = isinstance(asked, DpoHyperparameters)
    rft = isinstance(asked, ReinforcementHyperparameters)
    beta: float | None = None
    if isinstance(asked, DpoHyperparameters):
        beta = DPO_BETA if asked.beta == AUTO else asked.beta
    # Only supervised runs learn from prompt tokens; DPO and RFT score the outputs alone.
    plw = asked.prompt_loss_weight if isinstance(asked, SupervisedHyperparameters) else 0.0
    tuning: Tuning = auto_tuning if spec.tuning == AUTO else spec.tuning
    auto_batch = RFT_BATCH if rft else auto_batch_size(n_examples, builtin)
    batch_size = min(auto_batch if asked.batch_size == AUTO else asked.batch_size, n_examples)
    if asked.n_epochs != AUTO:
        epochs = asked.n_epochs
    elif dpo or rft:
        epochs = RFT_EPOCHS if rft else AUTO_EPOCHS
    else:
        epochs = auto_epochs(n_examples, batch_size, builtin, classes)
    steps_per_epoch = -(-n_examples // batch_size)
    steps = epochs * steps_per_epoch
    # The classifier rule of the multiplier is for supervised runs: DPO and RFT scale their own rates.
    lr_classifier = classes > 0 and not dpo and not rft
    multiplier = (
        auto_multiplier(batch_size, builtin, lr_classifier, steps)
        if asked.learning_rate_multiplier == AUTO
        else asked.learning_rate_multiplier
    )
    # Stopping early needs a validation file; an explicit n_epochs asks for every step of it.
    early_stop = asked.n_epochs == AUTO and not dpo and not rft and spec.validation_file is not None
    # Generation on a built-in gets 2,000 steps for the hardest tasks of the suite; an easy one answers
    # every validation example exactly long before (docs/training.md), and stops there.
    exact_stop = early_stop and builtin and not classes
    factor = DPO_LEARNING_RATE_FACTOR if dpo else RFT_LEARNING_RATE_FACTOR if rft else 1
    learning_rate = multiplier * BASE_LEARNING_RATE[(tuning, builtin)] * factor
    rate = f"learning rate {learning_rate:.2e}" + (
        f", {factor}x the supervised rate for {'DPO' if dpo else 'RFT'}" if dpo or rft else ""
    )
    by_batch = f"by batch size {batch_size} (OpenAI: 0.05 below 8, 0.1 below 32, else 0.2)"
    if builtin and lr_classifier and steps >= MIN_STEPS:
        by_batch += (
            f", x{CLASSIFIER_LR_FACTOR} for a classifier on a built-in trained {MIN_STEPS} steps or more"
        )
    stopping = (
        f"; stops early once {EARLY_STOPPING_PATIENCE} validation passes in a row find no lower validation "
        "loss, keeping the best weights seen"
        + (
            ", or once a pass with the lowest loss so far answers every validation example exactly"
            if exact_stop
            else ""
        )
    )
    reasons = {
        "tuning": f"{tuning}: " + ("built-in random models train every weight" if builtin else LORA_RULE),
        "batch_size": f"{batch_size}: {batch_reason(batch_size, n_examples, builtin)}",
        "learning_rate_multiplier": f"{multiplier}: {by_batch}; {rate}",
        "n_epochs": f"{epochs}: "
        + (
            f"OpenAI's default ({steps} steps; longer DPO runs over-optimise)"
            if dpo
            else f"{RFT_EPOCHS} passes over the prompts ({steps} steps)"
            if rft
            else epochs_reason(epochs, steps_per_epoch, builtin, classes) + (stopping if early_stop else "")
        ),
        "beta": f"{DPO_BETA}: OpenAI's default",
    }
    extra: dict[str, Any] = {}
    if isinstance(asked, ReinforcementHyperparameters):
        if asked.batch_size == AUTO:
            reasons["batch_size"] = f"{batch_size}: {RFT_BATCH} prompts a step, each sampled several times"
        extra, more_reasons = reinforcement(asked, steps)
        reasons.update(more_reasons)
        beta = RFT_KL
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
        stop_when_exact=exact_stop,
        reasons={key: line for key, line in reasons.items() if chosen.get(key) == AUTO},
        **extra,
    )


def reinforcement(asked: ReinforcementHyperparameters, steps: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The reinforcement-only values for a run of `steps` optimizer steps, and why for each "auto"."""
    compute = 1.0 if asked.compute_multiplier == AUTO else asked.compute_multiplier
    samples = max(2, round(RFT_SAMPLES * compute))  # a group of one has no spread to learn from
    interval = max(1, steps // RFT_EVALS_PER_RUN) if asked.eval_interval == AUTO else asked.eval_interval
    eval_samples = RFT_EVAL_SAMPLES if asked.eval_samples == AUTO else asked.eval_samples
    values = {
        "samples_per_prompt": samples,
        "compute_multiplier": compute,
        "eval_interval": interval,
        "eval_samples": eval_samples,
        "reasoning_effort": asked.reasoning_effort,
        "max_sample_tokens": MAX_SAMPLE_TOKENS[asked.reasoning_effort],
        "temperature": RFT_TEMPERATURE,
        "clip_epsilon": RFT_CLIP,
    }
    reasons = {
        "compute_multiplier": f"{compute}: {samples} samples per prompt ({RFT_SAMPLES} x compute_multiplier)",
        "eval_interval": f"{interval}: about {RFT_EVALS_PER_RUN} validation scores per run",
        "eval_samples": f"{eval_samples}: samples per validation prompt, at temperature {RFT_TEMPERATURE}",
    }
    return values, reasons

"""How "auto" resolves: built-ins get enough steps to learn, more for generation than for a classifier."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tuneforge.spec import ResolvedHyperparameters, TrainSpec
from tuneforge.training import hyperparameters as hp


def steps(n: int, classifier: bool, builtin: bool = True) -> int:
    batch = hp.auto_batch_size(n, builtin)
    return hp.auto_epochs(n, batch, builtin, classifier) * math.ceil(n / batch)


def test_built_ins_train_a_classifier_300_steps_and_generation_2000() -> None:
    assert steps(1000, classifier=True) == 500  # OpenAI's 4 epochs already give the 300 steps
    assert 300 <= steps(200, classifier=True) < 325
    assert 2000 <= steps(1000, classifier=False) < 2125
    assert steps(20_000, classifier=False) == 4 * math.ceil(20_000 / 40)  # big files: OpenAI's 4 epochs
    assert hp.auto_epochs(10, 8, builtin=True, classifier=False) == hp.MAX_AUTO_EPOCHS_GENERATION


def test_a_classifier_on_a_built_in_takes_a_third_of_openais_multiplier_over_enough_steps() -> None:
    assert hp.auto_multiplier(8, builtin=True, classifier=True, steps=300) == 0.03  # bench/quality.py's best
    assert hp.auto_multiplier(8, builtin=True, classifier=True, steps=120) == 0.1  # too few steps for 0.03
    assert hp.auto_multiplier(8, builtin=True, classifier=False, steps=1000) == 0.1  # generation: OpenAI's
    assert hp.auto_multiplier(64, builtin=False, classifier=True, steps=1000) == 0.2  # pretrained: OpenAI's
    assert resolved(None).learning_rate == pytest.approx(0.03 * hp.BASE_LEARNING_RATE[("full", True)])
    assert resolved(None, n_epochs=4).learning_rate_multiplier == 0.1  # 100 steps asked for
    assert resolved(None, method="dpo").learning_rate_multiplier == 0.1  # DPO scales its own rate


def test_reasons_state_the_values_resolved_not_the_rule_alone() -> None:
    capped = hp.resolve(
        TrainSpec.model_validate({"model": "tiny", "training_file": "t"}),
        n_examples=72, builtin=True, classifier=True, auto_tuning="full", seed=0,
    )  # fmt: skip
    assert (capped.n_epochs, capped.total_steps) == (hp.MAX_AUTO_EPOCHS, 225)  # 9 steps an epoch, capped
    assert capped.reasons["n_epochs"].startswith("25: ") and "225 steps" in capped.reasons["n_epochs"]
    assert "short of the 300" in capped.reasons["n_epochs"]
    assert capped.reasons["batch_size"].startswith("8: the least on built-ins")
    assert capped.reasons["learning_rate_multiplier"].startswith("0.1: by batch size 8")  # 225 < 300 steps
    enough = resolved(None)  # 200 examples: 25 steps an epoch, 12 epochs for 300 steps
    assert enough.reasons["n_epochs"].startswith("12: 300 steps of 25 per epoch")
    assert (
        "x0.3 for a classifier on a built-in trained 300 steps" in enough.reasons["learning_rate_multiplier"]
    )
    big = hp.resolve(
        TrainSpec.model_validate({"model": "tiny", "training_file": "t"}),
        n_examples=200_000, builtin=False, classifier=True, auto_tuning="lora", seed=0,
    )  # fmt: skip
    assert big.reasons["batch_size"] == "256: 0.2% of the 200000 training examples, capped at 256"
    assert big.reasons["n_epochs"] == "4: OpenAI's default (3128 steps of 782 per epoch)"


def test_pretrained_models_keep_openais_four_epochs() -> None:
    assert hp.auto_epochs(1000, 8, builtin=False, classifier=False) == 4


def test_labels_used_again_and_again_are_a_classifier_and_free_text_is_not() -> None:
    assert hp.looks_like_classifier([" yes", " no"] * 20)
    assert hp.looks_like_classifier([f" topic{i % 10}" for i in range(400)])
    assert not hp.looks_like_classifier([f" answer {i}" for i in range(400)])
    assert not hp.looks_like_classifier([f" topic{i % 60}" for i in range(10_000)])  # beyond MAX_CLASSES
    assert not hp.looks_like_classifier([])


def resolved(
    validation_file: str | None, method: str = "supervised", **asked: object
) -> ResolvedHyperparameters:
    spec = TrainSpec.model_validate(
        {
            "model": "tiny",
            "training_file": "train.jsonl",
            "validation_file": validation_file,
            "method": {"type": method, "hyperparameters": asked},
        }
    )
    return hp.resolve(spec, n_examples=200, builtin=True, classifier=True, auto_tuning="full", seed=0)


def test_auto_epochs_with_a_validation_file_stop_early_and_say_so() -> None:
    auto = resolved("valid.jsonl")
    assert auto.early_stopping_patience == hp.EARLY_STOPPING_PATIENCE
    assert "stops early" in auto.reasons["n_epochs"]
    assert resolved(None).early_stopping_patience is None  # nothing to stop on
    assert resolved("valid.jsonl", n_epochs=3).early_stopping_patience is None  # every asked step is trained
    assert resolved("valid.jsonl", method="dpo").early_stopping_patience is None  # DPO: see docs/training.md


def rft_spec(**hyperparameters: object) -> TrainSpec:
    grader = {"type": "string_check", "name": "g", "input": "a", "reference": "a", "operation": "eq"}
    method = {"type": "reinforcement", "hyperparameters": hyperparameters, "grader": grader}
    return TrainSpec.model_validate({"model": "tiny", "training_file": "x", "method": method})


def resolve_rft(**hyperparameters: object) -> ResolvedHyperparameters:
    spec = rft_spec(**hyperparameters)
    return hp.resolve(spec, n_examples=40, builtin=True, classifier=False, auto_tuning="full", seed=0)


def test_reinforcement_auto_values_and_the_compute_multiplier_scaling_the_group() -> None:
    auto = resolve_rft()
    assert (auto.batch_size, auto.n_epochs, auto.total_steps) == (8, 4, 20)
    assert auto.samples_per_prompt == 8 and auto.max_sample_tokens == 256 and auto.eval_interval == 2
    assert auto.learning_rate == 0.1 * 1e-2 * hp.RFT_LEARNING_RATE_FACTOR  # multiplier 0.1 at batch 8
    assert auto.prompt_loss_weight == 0.0 and auto.beta == hp.RFT_KL
    assert "compute_multiplier" in auto.reasons and "samples per prompt" in auto.reasons["compute_multiplier"]
    asked = resolve_rft(compute_multiplier=2.0, reasoning_effort="high", eval_samples=2, batch_size=4)
    assert asked.samples_per_prompt == 16 and asked.max_sample_tokens == 512 and asked.eval_samples == 2
    assert "compute_multiplier" not in asked.reasons and asked.total_steps == 40
    assert resolve_rft(compute_multiplier=0.01).samples_per_prompt == 2  # a group needs two to compare


def test_reinforcement_hyperparameters_keep_openais_bounds() -> None:
    for bad in ({"compute_multiplier": 11}, {"eval_interval": 0}, {"reasoning_effort": "max"}):
        with pytest.raises(ValidationError):
            rft_spec(**bad)

"""How "auto" resolves: built-ins get enough steps to learn, more for generation and many labels than for a
small classifier."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tuneforge.spec import ResolvedHyperparameters, TrainSpec
from tuneforge.training import hyperparameters as hp


def steps(n: int, classes: int, builtin: bool = True) -> int:
    batch = hp.auto_batch_size(n, builtin)
    return hp.auto_epochs(n, batch, builtin, classes) * math.ceil(n / batch)


def test_built_ins_train_a_classifier_300_steps_and_generation_2000() -> None:
    assert steps(1000, classes=2) == 500  # OpenAI's 4 epochs already give the 300 steps
    assert 300 <= steps(200, classes=2) < 325
    assert 2000 <= steps(1000, classes=0) < 2125
    assert steps(20_000, classes=0) == 4 * math.ceil(20_000 / 40)  # big files: OpenAI's 4 epochs
    assert hp.auto_epochs(10, 8, builtin=True, classes=0) == hp.MAX_AUTO_EPOCHS_GENERATION


def test_a_classifier_of_many_labels_gets_twenty_steps_a_label() -> None:
    assert steps(200, classes=4) == steps(200, classes=2)  # 80 steps' worth of labels: 300 still rules
    assert steps(500, classes=50) == 16 * 63  # bench/quality.py's triage50: 1,008 steps scored 0.975
    assert hp.auto_epochs(72, 8, builtin=True, classes=50) == hp.MAX_AUTO_EPOCHS  # a small file is capped


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
        n_examples=72, builtin=True, classes=2, auto_tuning="full", seed=0,
    )  # fmt: skip
    assert (capped.n_epochs, capped.total_steps) == (hp.MAX_AUTO_EPOCHS, 225)  # 9 steps an epoch, capped
    assert capped.reasons["n_epochs"].startswith("25: ") and "225 steps" in capped.reasons["n_epochs"]
    assert "short of the 300 steps a built-in gets for a classifier of 2 labels" in capped.reasons["n_epochs"]
    assert capped.reasons["batch_size"].startswith("8: the least on built-ins")
    assert capped.reasons["learning_rate_multiplier"].startswith("0.1: by batch size 8")  # 225 < 300 steps
    enough = resolved(None)  # 200 examples: 25 steps an epoch, 12 epochs for 300 steps
    assert enough.reasons["n_epochs"].startswith("12: 300 steps of 25 per epoch")
    assert (
        "x0.3 for a classifier on a built-in trained 300 steps" in enough.reasons["learning_rate_multiplier"]
    )
    big = hp.resolve(
        TrainSpec.model_validate({"model": "tiny", "training_file": "t"}),
        n_examples=200_000, builtin=False, classes=2, auto_tuning="lora", seed=0,
    )  # fmt: skip
    assert big.reasons["batch_size"] == "256: 0.2% of the 200000 training examples, capped at 256"
    assert big.reasons["n_epochs"] == "4: OpenAI's default (3128 steps of 782 per epoch)"


def test_pretrained_models_keep_openais_four_epochs() -> None:
    assert hp.auto_epochs(1000, 8, builtin=False, classes=0) == 4
    assert hp.auto_epochs(1000, 8, builtin=False, classes=50) == 4


def test_labels_used_again_and_again_are_a_classifier_and_free_text_is_not() -> None:
    assert hp.looks_like_classifier([" yes", " no"] * 20)
    assert hp.looks_like_classifier([f" topic{i % 10}" for i in range(400)])
    assert not hp.looks_like_classifier([f" answer {i}" for i in range(400)])
    assert not hp.looks_like_classifier([f" topic{i % 60}" for i in range(10_000)])  # beyond MAX_CLASSES
    assert not hp.looks_like_classifier([])
    assert hp.count_classes([f" {i % 50 + 1}" for i in range(500)]) == 50
    assert hp.count_classes([f" answer {i}" for i in range(400)]) == 0


def resolved(
    validation_file: str | None, method: str = "supervised", classes: int = 2, **asked: object
) -> ResolvedHyperparameters:
    spec = TrainSpec.model_validate(
        {
            "model": "tiny",
            "training_file": "train.jsonl",
            "validation_file": validation_file,
            "method": {"type": method, "hyperparameters": asked},
        }
    )
    return hp.resolve(spec, n_examples=200, builtin=True, classes=classes, auto_tuning="full", seed=0)


def test_auto_epochs_with_a_validation_file_stop_early_and_say_so() -> None:
    auto = resolved("valid.jsonl")
    assert auto.early_stopping_patience == hp.EARLY_STOPPING_PATIENCE
    assert "stops early" in auto.reasons["n_epochs"]
    assert resolved(None).early_stopping_patience is None  # nothing to stop on
    assert resolved("valid.jsonl", n_epochs=3).early_stopping_patience is None  # every asked step is trained
    assert resolved("valid.jsonl", method="dpo").early_stopping_patience is None  # DPO: see docs/training.md
    generation = resolved("valid.jsonl", classes=0)
    assert (
        generation.stop_when_exact
        and "answers every validation example exactly" in generation.reasons["n_epochs"]
    )
    assert not auto.stop_when_exact  # classifiers: not measured, and their 300 steps are already few
    assert not resolved(None, classes=0).stop_when_exact


def rft_spec(**hyperparameters: object) -> TrainSpec:
    grader = {"type": "string_check", "name": "g", "input": "a", "reference": "a", "operation": "eq"}
    method = {"type": "reinforcement", "hyperparameters": hyperparameters, "grader": grader}
    return TrainSpec.model_validate({"model": "tiny", "training_file": "x", "method": method})


def resolve_rft(**hyperparameters: object) -> ResolvedHyperparameters:
    spec = rft_spec(**hyperparameters)
    return hp.resolve(spec, n_examples=40, builtin=True, classes=0, auto_tuning="full", seed=0)


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

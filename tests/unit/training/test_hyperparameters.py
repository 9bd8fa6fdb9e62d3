"""How "auto" resolves: built-ins get enough steps to learn, more for generation than for a classifier."""

from __future__ import annotations

import math

from tuneforge.spec import ResolvedHyperparameters, TrainSpec
from tuneforge.training import hyperparameters as hp


def steps(n: int, classifier: bool, builtin: bool = True) -> int:
    batch = hp.auto_batch_size(n, builtin)
    return hp.auto_epochs(n, batch, builtin, classifier) * math.ceil(n / batch)


def test_built_ins_train_a_classifier_400_steps_and_generation_1000() -> None:
    assert steps(1000, classifier=True) == 500  # OpenAI's 4 epochs already give 400 steps
    assert 400 <= steps(200, classifier=True) < 425
    assert 1000 <= steps(1000, classifier=False) < 1125
    assert steps(20_000, classifier=False) == 4 * math.ceil(20_000 / 40)  # big files: OpenAI's 4 epochs
    assert hp.auto_epochs(10, 8, builtin=True, classifier=False) == hp.MAX_AUTO_EPOCHS


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

"""Early stopping on the validation file: an "auto" run keeps the weights of its lowest validation loss."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.unit.training.conftest import train_job, write_jsonl
from tuneforge.settings import Settings
from tuneforge.training.events import ListSink, MessageEvent
from tuneforge.training.recipe import train

WORDS = ["amber", "brick", "cedar", "delta", "ember", "fjord", "grove", "haven", "ivory", "jolt"]


def noise_rows(n: int, seed: int) -> list[dict[str, object]]:
    """Labels drawn at random: the model can learn their prior, then only memorise training rows, so the
    validation loss falls and then climbs."""
    rng = random.Random(seed)
    return [
        {"prompt": " ".join(rng.sample(WORDS, 4)) + "\n\n###\n\n", "completion": rng.choice([" yes", " no"])}
        for _ in range(n)
    ]


def validation_loss(model_dir: Path, rows: list[dict[str, object]]) -> float:
    """Mean cross-entropy over completion tokens (and end of text), computed here from the saved model."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            prompt = tokenizer(str(row["prompt"]), add_special_tokens=False).input_ids
            completion = [*tokenizer(str(row["completion"]), add_special_tokens=False).input_ids]
            ids = torch.tensor([prompt + completion + [tokenizer.eos_token_id]])
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
            losses = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="none")
            total, count = total + float(losses.sum()), count + losses.numel()
    return total / count


def test_auto_epochs_stop_early_and_keep_the_weights_of_the_best_validation_loss(
    settings: Settings, tmp_path: Path
) -> None:
    valid_rows = noise_rows(24, seed=2)
    files = (
        write_jsonl(tmp_path / "train.jsonl", noise_rows(16, seed=1)),
        write_jsonl(tmp_path / "valid.jsonl", valid_rows),
    )
    sink = ListSink()  # auto epochs: 25 of 2 steps, a validation pass every 5 steps
    result = train(train_job(tmp_path, *files, learning_rate_multiplier=0.5), settings, sink)

    with (result.output_dir / "results.csv").open() as handle:
        losses = [float(r["validation_loss"]) for r in csv.DictReader(handle) if r["validation_loss"]]
    assert losses[-1] > min(losses) * 1.05  # the run did overfit, so keeping the best matters
    assert abs(validation_loss(result.output_dir, valid_rows) - min(losses)) < 1e-4 * min(losses)
    assert result.metrics["validation_loss"] == min(losses)
    said = [e.message for e in sink.events if isinstance(e, MessageEvent)]
    assert any(m.startswith("Stopped early at step") for m in said), said
    assert any(m.startswith("Kept the weights of step") for m in said), said
    assert result.step < result.hyperparameters.total_steps


def test_an_explicit_n_epochs_trains_every_step_and_keeps_the_last(
    settings: Settings, tmp_path: Path
) -> None:
    valid_rows = noise_rows(24, seed=2)
    files = (
        write_jsonl(tmp_path / "train.jsonl", noise_rows(16, seed=1)),
        write_jsonl(tmp_path / "valid.jsonl", valid_rows),
    )
    result = train(
        train_job(tmp_path, *files, n_epochs=10, learning_rate_multiplier=0.5), settings, ListSink()
    )

    assert result.hyperparameters.early_stopping_patience is None
    assert result.step == result.hyperparameters.total_steps == 20
    assert abs(validation_loss(result.output_dir, valid_rows) - result.metrics["validation_loss"]) < 1e-3

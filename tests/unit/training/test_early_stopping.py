"""Early stopping on the validation file: an "auto" run keeps the weights of its lowest validation loss,
a run resumed after a kill keeps the same ones, and generation on a built-in stops once it answers every
validation example exactly."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.unit.training.conftest import train_job, write_jsonl
from tests.unit.training.test_recipe import CrashAtStep
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob
from tuneforge.training.events import ListSink, MessageEvent
from tuneforge.training.recipe import train

WORDS = ["amber", "brick", "cedar", "delta", "ember", "fjord", "grove", "haven", "ivory", "jolt"]


def noise_rows(n: int, seed: int) -> list[dict[str, object]]:
    """Labels drawn at random: the model learns the format and the labels' prior, then can only memorise
    the training rows, so the validation loss falls and then climbs."""
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
            completion = tokenizer(str(row["completion"]), add_special_tokens=False).input_ids
            ids = torch.tensor([prompt + completion + [tokenizer.eos_token_id]])
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
            losses = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="none")
            total, count = total + float(losses.sum()), count + losses.numel()
    return total / count


def noise_job(
    tmp_path: Path, name: str, **hyperparameters: object
) -> tuple[TrainJob, list[dict[str, object]]]:
    """8 training rows: one step per epoch, so "auto" gives 25 epochs; a validation pass every 2 steps."""
    valid_rows = noise_rows(24, seed=2)
    files = (
        write_jsonl(tmp_path / "train.jsonl", noise_rows(8, seed=1)),
        write_jsonl(tmp_path / "valid.jsonl", valid_rows),
    )
    job = train_job(
        tmp_path, *files, output_dir=tmp_path / name, learning_rate_multiplier=1.0, **hyperparameters
    )
    return job.model_copy(update={"eval_every": 2}), valid_rows


@pytest.mark.slow
def test_auto_epochs_stop_early_keep_the_best_weights_and_a_resumed_run_keeps_the_same(
    settings: Settings, tmp_path: Path
) -> None:
    job, valid_rows = noise_job(tmp_path, "whole")
    sink = ListSink()
    whole = train(job.model_copy(update={"resume": True}), settings, sink)

    with (whole.output_dir / "results.csv").open() as handle:
        losses = [float(r["validation_loss"]) for r in csv.DictReader(handle) if r["validation_loss"]]
    assert losses[-1] > min(losses) * 1.05  # the run did overfit, so keeping the best matters
    assert validation_loss(whole.output_dir, valid_rows) == pytest.approx(min(losses), rel=1e-4)
    assert whole.metrics["validation_loss"] == pytest.approx(min(losses), rel=1e-5)  # the CSV rounds
    said = [e.message for e in sink.events if isinstance(e, MessageEvent)]
    assert any(m.startswith("Stopped early at step") for m in said), said
    assert any(m.startswith("Kept the weights of step") for m in said), said
    assert whole.step < whole.hyperparameters.total_steps

    cut, _ = noise_job(tmp_path, "cut")
    with pytest.raises(SystemExit):  # killed after the best was seen and saved with a resume state
        train(cut, settings, CrashAtStep(step=whole.step - 1))
    resumed = train(cut.model_copy(update={"resume": True}), settings, ListSink())
    a, b = (load_file(str(r.output_dir / "model.safetensors")) for r in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_explicit_n_epochs_trains_every_step_and_keeps_the_last(
    settings: Settings, tmp_path: Path
) -> None:
    job, valid_rows = noise_job(tmp_path, "out", n_epochs=10)
    result = train(job, settings, ListSink())

    assert result.hyperparameters.early_stopping_patience is None
    assert result.step == result.hyperparameters.total_steps == 10
    assert validation_loss(result.output_dir, valid_rows) == pytest.approx(
        result.metrics["validation_loss"], rel=1e-4
    )


def copy_rows(n: int) -> list[dict[str, object]]:
    """Two words to say back in the other order: free text (each completion its own), easily learnt."""
    rng = random.Random(3)
    pairs = [rng.sample(WORDS, 2) for _ in range(n)]
    return [{"prompt": f"{a} {b}\n\n###\n\n", "completion": f" {b} {a}"} for a, b in pairs]


def test_generation_on_a_built_in_stops_once_every_validation_example_is_answered_exactly(
    settings: Settings, tmp_path: Path
) -> None:
    rows = copy_rows(16)
    files = (write_jsonl(tmp_path / "train.jsonl", rows), write_jsonl(tmp_path / "valid.jsonl", rows[:8]))
    job = train_job(tmp_path, *files, output_dir=tmp_path / "out", learning_rate_multiplier=0.5)
    sink = ListSink()
    result = train(job, settings, sink)

    assert result.hyperparameters.stop_when_exact
    said = [e.message for e in sink.events if isinstance(e, MessageEvent)]
    assert any("every validation example is answered exactly" in m for m in said), said
    assert result.step < result.hyperparameters.total_steps
    assert result.metrics["validation_sequence_accuracy"] == 1.0
    model = AutoModelForCausalLM.from_pretrained(result.output_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    for row in rows[:8]:  # what "exactly" promises: greedy decoding gives each validation completion
        ids = tokenizer(str(row["prompt"]), return_tensors="pt", add_special_tokens=False).input_ids
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        assert tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) == row["completion"]

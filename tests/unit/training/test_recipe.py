from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as skm
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.unit.training.conftest import (
    SENTIMENT_WORDS,
    TOPIC_WORDS,
    keyword_task,
    train_job,
    write_jsonl,
)
from tuneforge.samples.styles import TRAIN_WORDS, preference_pairs
from tuneforge.settings import Settings
from tuneforge.training import artifacts, modeling
from tuneforge.training.events import (
    CheckpointEvent,
    DoneEvent,
    Event,
    HyperparametersEvent,
    ListSink,
    MetricsEvent,
)
from tuneforge.training.export import export
from tuneforge.training.formats import DEFAULT_CHAT_TEMPLATE
from tuneforge.training.recipe import train

config = train_job


def results(output_dir: Path) -> list[dict[str, str]]:
    with (output_dir / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_loss_falls_and_output_loads_without_tuneforge(
    settings: Settings, sentiment_files: tuple[Path, Path], sink: ListSink, tmp_path: Path
) -> None:
    result = train(config(tmp_path, *sentiment_files, n_epochs=2), settings, sink)

    losses = [float(row["training_loss"]) for row in results(result.output_dir)]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    assert isinstance(sink.events[0], HyperparametersEvent) and isinstance(sink.events[-1], DoneEvent)
    assert sink.events[-1].metrics["full_valid_loss"] < 0.5
    manifest = result.output_dir / "tuneforge.json"
    assert manifest.exists() and (result.output_dir / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(result.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert sum(p.numel() for p in model.parameters()) == result.model.num_parameters()


def test_lora_changes_every_adapter_weight_and_no_base_weight(
    settings: Settings, sentiment_files: tuple[Path, Path], sink: ListSink, tmp_path: Path
) -> None:
    lineage = modeling.lineage("tiny", settings)
    initial = modeling.load_for_training(lineage, settings, "lora", {"r": 4, "alpha": 8, "dropout": 0.0}, 0)
    before = {k: v.clone() for k, v in initial.state_dict().items()}

    cfg = config(tmp_path, sentiment_files[0], tuning="lora", lora={"r": 4, "alpha": 8}, n_epochs=1)
    result = train(cfg, settings, sink)

    after = result.model.state_dict()
    adapters = [k for k in before if "lora_" in k]
    assert adapters and all(not torch.equal(before[k], after[k]) for k in adapters)
    assert all(torch.equal(before[k], after[k]) for k in before if "lora_" not in k)
    saved = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)

    merged_dir = export(result.output_dir, tmp_path / "merged", settings, merge=True)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # plain transformers, no peft
    ids = torch.tensor([[5, 70, 300, 12]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, result.model(input_ids=ids).logits, atol=1e-4)


@pytest.mark.slow
def test_memorised_facts_come_back_by_greedy_decoding(
    settings: Settings, sink: ListSink, tmp_path: Path
) -> None:
    facts = {"The capital of Zorbia is": " Quexlo.", "Mira's pet is a": " blue yak."}
    rows = [{"prompt": p, "completion": c} for p, c in facts.items()] * 8
    cfg = config(tmp_path, write_jsonl(tmp_path / "facts.jsonl", rows), n_epochs=30, batch_size=4)
    train(cfg, settings, sink)

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    for prompt, completion in facts.items():
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=tokenizer.eos_token_id)
        assert tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) == completion


def label_probabilities(
    model: Any, tokenizer: Any, rows: list[dict[str, str]], labels: list[str]
) -> np.ndarray:
    """The direct computation: softmax over the labels' first tokens after each prompt."""
    first = [tokenizer(label).input_ids[0] for label in labels]
    out = []
    with torch.no_grad():
        for row in rows:
            logits = model(tokenizer(row["prompt"], return_tensors="pt").input_ids).logits[0, -1]
            out.append(logits[first].softmax(-1).numpy())
    return np.array(out)


@pytest.mark.slow
def test_binary_and_four_class_tasks_beat_chance_and_columns_agree_with_sklearn(
    settings: Settings, tmp_path: Path
) -> None:
    for name, words, extra, chance in [
        ("binary", SENTIMENT_WORDS, {"positive_class": " positive"}, 0.5),
        ("four", TOPIC_WORDS, {"n_classes": 4}, 0.25),
    ]:
        valid_rows = keyword_task(words, 80, seed=12)
        files = (
            write_jsonl(tmp_path / f"{name}-train.jsonl", keyword_task(words, 240, seed=11)),
            write_jsonl(tmp_path / f"{name}-valid.jsonl", valid_rows),
        )  # type: ignore[arg-type]
        cfg = config(
            tmp_path,
            *files,
            output_dir=tmp_path / name,
            n_epochs=4,  # "auto" would give 400 steps; 120 are plenty for these keyword tasks
            classification={"betas": [0.5], **extra},
        )
        result = train(cfg, settings, ListSink())

        labels = sorted(words)
        probs = label_probabilities(
            result.model, AutoTokenizer.from_pretrained(result.output_dir), valid_rows, labels
        )
        truth = np.array([labels.index(r["completion"]) for r in valid_rows])
        accuracy = float(np.mean(probs.argmax(1) == truth))
        assert accuracy > chance + 0.3
        assert result.metrics["classification/accuracy"] == pytest.approx(accuracy)
        if name == "binary":
            positive = labels.index(" positive")
            auroc = skm.roc_auc_score(truth == positive, probs[:, positive])
            assert result.metrics["classification/auroc"] == pytest.approx(auroc, abs=1e-6)
            assert "classification/f0.5" in results(result.output_dir)[-1]
        else:
            f1 = skm.f1_score(truth, probs.argmax(1), average="weighted")
            assert result.metrics["classification/weighted_f1_score"] == pytest.approx(f1)
        assert results(result.output_dir)[-1]["classification/accuracy"] != ""


class CrashAtStep(ListSink):
    """Stands in for a kill: the process dies as it reports step `step`, before that step is saved."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def emit(self, event: Event) -> None:
        super().emit(event)
        if isinstance(event, MetricsEvent) and event.row["step"] == self.step:
            raise SystemExit("killed")


@pytest.mark.slow
def test_resume_ends_with_the_weights_and_losses_of_an_uninterrupted_run(
    settings: Settings, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    whole = train(
        config(
            tmp_path,
            *sentiment_files,
            n_epochs=2,
            checkpoint_every=7,
            output_dir=tmp_path / "whole",
            resume=True,
        ),
        settings,
        ListSink(),
    )
    interrupted = config(
        tmp_path, *sentiment_files, n_epochs=2, checkpoint_every=7, output_dir=tmp_path / "cut"
    )
    with pytest.raises(SystemExit):
        train(interrupted, settings, CrashAtStep(step=30))  # mid second epoch, after the state at 28
    (tmp_path / "cut" / "resume" / ".tmp-half-written").mkdir()  # a kill during a later save
    assert artifacts.latest_resume_state(tmp_path / "cut") is not None
    resumed = train(interrupted.model_copy(update={"resume": True}), settings, ListSink())

    a, b = (
        load_file(str(whole.output_dir / "model.safetensors")),
        load_file(str(resumed.output_dir / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert results(whole.output_dir) == results(resumed.output_dir)  # equal seeds, equal losses


def test_different_seeds_give_different_losses(
    settings: Settings, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    runs = [
        train(
            config(tmp_path, sentiment_files[0], n_epochs=1, seed=seed, output_dir=tmp_path / str(seed)),
            settings,
            ListSink(),
        )
        for seed in (1, 1, 2)
    ]
    losses = [[row["training_loss"] for row in results(run.output_dir)] for run in runs]
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_continue_fine_tuning_from_an_earlier_output(
    settings: Settings, sentiment_files: tuple[Path, Path], tmp_path: Path
) -> None:
    first = train(
        config(tmp_path, sentiment_files[0], n_epochs=1, tuning="lora", output_dir=tmp_path / "a"),
        settings,
        ListSink(),
    )
    second = train(
        config(
            tmp_path, sentiment_files[0], model=str(first.output_dir), n_epochs=1, output_dir=tmp_path / "b"
        ),
        settings,
        ListSink(),
    )

    manifest = json.loads((second.output_dir / "tuneforge.json").read_text())
    assert manifest["base_model"]["name"] == "tiny" and manifest["parent_model"] == str(first.output_dir)
    assert second.hyperparameters.tuning == "lora"  # "auto" keeps the parent's method
    losses_a = [float(r["training_loss"]) for r in results(first.output_dir)]
    losses_b = [float(r["training_loss"]) for r in results(second.output_dir)]
    assert np.mean(losses_b[:3]) < np.mean(losses_a[:3])  # it started from what the first run learnt


def test_a_finished_run_keeps_its_model_and_last_checkpoints_but_no_resume_state(
    settings: Settings, sentiment_files: tuple[Path, Path], sink: ListSink, tmp_path: Path
) -> None:
    job = config(tmp_path, *sentiment_files, n_epochs=5, batch_size=40, checkpoint_every=3)
    train(job, settings.model_copy(update={"keep_checkpoints": 3}), sink)

    announced = [event.step for event in sink.of_type(CheckpointEvent)]
    assert announced == [12, 16]  # the last epochs' ends (as OpenAI) but the last, whose model is the output
    kept = artifacts.model_checkpoints(job.output_dir)
    assert [artifacts.step_of(path) for path in kept] == [12, 16]  # with the final model: three
    assert not (job.output_dir / "resume").exists()
    assert not list(job.output_dir.rglob(artifacts.STATE_NAME))
    for path in kept:  # each is a model on its own
        assert AutoModelForCausalLM.from_pretrained(path).num_parameters() > 0
    metrics = sink.of_type(CheckpointEvent)[-1].metrics
    assert metrics["step"] == 16 and {"train_loss", "valid_loss", "full_valid_loss"} <= set(metrics)


def test_dpo_trains_only_the_adapters_and_resumes_with_the_same_reference_to_the_same_weights(
    settings: Settings, tmp_path: Path
) -> None:
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs(TRAIN_WORDS[:16]))
    options: dict[str, Any] = {"tuning": "lora", "n_epochs": 3, "batch_size": 4, "checkpoint_every": 5}
    dpo = {"method": "dpo", "learning_rate_multiplier": 1.0}
    whole = train(
        config(tmp_path, pairs, output_dir=tmp_path / "whole", **options, **dpo), settings, ListSink()
    )
    cut = config(tmp_path, pairs, output_dir=tmp_path / "cut", **options, **dpo)
    with pytest.raises(SystemExit):
        train(cut, settings, CrashAtStep(step=7))
    resumed = train(cut.model_copy(update={"resume": True}), settings, ListSink())

    rows = results(whole.output_dir)
    assert (
        float(rows[-1]["training_reward_accuracy"]) == 1.0 and float(rows[-1]["training_reward_margin"]) > 0
    )
    assert float(rows[-1]["training_loss"]) < float(rows[0]["training_loss"])
    a, b = (load_file(str(run.output_dir / "adapter_model.safetensors")) for run in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert results(whole.output_dir) == results(resumed.output_dir)
    base = modeling.load_for_training(
        modeling.lineage("tiny", settings), settings, "full", {}, 0
    ).state_dict()
    trained = whole.model.state_dict()
    frozen = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in trained.items()}
    assert set(base) <= set(frozen) and all(torch.equal(base[k], frozen[k]) for k in base)

"""The calibration cache: a measured pace stands for runs of a like step size, a finished run's pace beats
a warm-up's, and validation passes are costed at their own measured pace. Memory: one count, which the
preflight answers and the run announces alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tuneforge.settings import Settings
from tuneforge.training import preflight, recipe
from tuneforge.training.estimate import (
    Calibration,
    Observation,
    Shape,
    Workload,
    observed,
    peak_memory,
    state_bytes,
    training_seconds,
)
from tuneforge.training.events import HyperparametersEvent, ListSink

from .conftest import train_job

KEY = "tiny|full|cpu/2t"


def test_a_pace_stands_for_like_steps_and_a_finished_run_beats_a_warm_up(settings: Settings) -> None:
    cache = Calibration(settings)
    assert cache.lookup(KEY, 200) is None
    cache.record(
        KEY,
        observed(tokens=2000, steps=10, seconds=4.0, source="warm-up", eval_tokens=500, eval_seconds=0.25),
    )
    cache.record(KEY, observed(tokens=8000, steps=10, seconds=8.0, source="warm-up"))
    found = cache.lookup(KEY, 250)  # 200 tokens a step measured; 250 is near enough, 800 is not
    assert found is not None and found.seconds_per_token == pytest.approx(0.002)
    assert cache.lookup(KEY, 350) is None and cache.lookup("tiny|lora|cpu/2t", 200) is None
    assert Calibration(settings).lookup(KEY, 800).seconds_per_token == pytest.approx(0.001)  # type: ignore[union-attr]

    cache.record(KEY, observed(tokens=6300, steps=30, seconds=9.45, source="run"))  # 210 a step
    run = cache.lookup(KEY, 200)
    assert run is not None and run.source == "run" and run.seconds_per_token == pytest.approx(0.0015)
    assert run.eval_seconds_per_token == pytest.approx(0.0005)  # the warm-up's timed validation pass


def test_validation_passes_cost_their_own_pace() -> None:
    timed = Observation(
        tokens_per_step=200, seconds_per_token=0.002, source="warm-up", eval_seconds_per_token=0.0001
    )
    assert training_seconds(
        timed, trained_tokens=10_000, validation_tokens=1_000, evaluations=11
    ) == pytest.approx(20.0 + 1.1)
    untimed = Observation(tokens_per_step=200, seconds_per_token=0.003, source="flops")
    assert training_seconds(untimed, 10_000, 1_000, 11) == pytest.approx(30.0 + 11.0)


def test_the_preflight_answers_the_peak_memory_the_run_announces(
    tmp_path: Path, sentiment_files: tuple[Path, Path], sink: ListSink, settings: Settings
) -> None:
    job = train_job(tmp_path, *sentiment_files, n_epochs=1, threads=1)
    answer = preflight.preflight(job, settings).estimate
    recipe.train(job, settings, sink)
    facts = next(e for e in sink.events if isinstance(e, HyperparametersEvent)).facts
    assert facts.estimated_peak_gib == round(answer.peak_cpu_bytes / 2**30, 3)

    checkpointing = settings.model_copy(update={"gradient_checkpointing": True})
    assert preflight.preflight(job, checkpointing).estimate.peak_cpu_bytes < answer.peak_cpu_bytes


def test_on_cuda_the_gpu_holds_the_state_and_activations_and_the_host_the_weights_once() -> None:
    work = Workload(
        n_parameters=10_000_000, trainable_parameters=10_000_000, shape=Shape(4, 256, 1024, 32_000),
        trained_tokens=0, tokens_per_step=0, validation_tokens=0, evaluations=0, micro_tokens=4096,
        held_tokens=100_000,
    )  # fmt: skip
    baseline = 2**29
    host, gpu = peak_memory(work, torch.device("cpu"), baseline)
    assert gpu is None and host > baseline + state_bytes(10_000_000, 10_000_000)
    cuda_host, cuda_gpu = peak_memory(work, torch.device("cuda"), baseline)
    assert cuda_gpu is not None and cuda_host == baseline + 64 * 100_000 + 4 * 10_000_000
    assert state_bytes(10_000_000, 10_000_000) < cuda_gpu < host  # bf16 activations: fewer bytes
    kept, _ = peak_memory(dataclasses.replace(work, checkpointing=True), torch.device("cpu"), baseline)
    assert state_bytes(10_000_000, 10_000_000) < kept - baseline < host - baseline

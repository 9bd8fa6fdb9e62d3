"""The calibration cache: a measured pace stands for runs of a like step size, a finished run's pace beats
a warm-up's, and validation passes are costed at their own measured pace."""

from __future__ import annotations

import pytest

from tuneforge.settings import Settings
from tuneforge.training.estimate import Calibration, Observation, observed, training_seconds

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

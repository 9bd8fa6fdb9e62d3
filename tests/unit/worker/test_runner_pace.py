"""The runner revises a running job's `estimated_finish` from the step times the child measures: fed the
child's own typed events, as `_follow` hands them over."""

from __future__ import annotations

import pytest

from tuneforge import ids
from tuneforge.settings import Settings
from tuneforge.spec import ResolvedHyperparameters
from tuneforge.store import jobs as job_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import open_database
from tuneforge.tracking.live import TrackerSet
from tuneforge.training.events import Event, HyperparametersEvent, MetricsEvent, RunFacts
from tuneforge.worker.runner import REVISE_SHARE, JobRunner, Outcome

TOTAL_STEPS = 100
WORKER = "worker-pace"


def resolved() -> ResolvedHyperparameters:
    return ResolvedHyperparameters(
        n_epochs=4, batch_size=8, learning_rate_multiplier=0.1, learning_rate=1e-3, prompt_loss_weight=0.01,
        tuning="full", seed=1, lora_r=8, lora_alpha=16, lora_dropout=0.0, warmup_steps=5, weight_decay=0.0,
        total_steps=TOTAL_STEPS,
    )  # fmt: skip


def announced(estimated_seconds: float) -> HyperparametersEvent:
    facts = RunFacts(
        n_train_examples=200, n_validation_examples=0, n_parameters=1000, trainable_parameters=1000,
        device="cpu", data_format="prompt_completion", estimated_seconds=estimated_seconds,
        estimated_peak_gib=0.5,
    )  # fmt: skip
    return HyperparametersEvent(resolved=resolved(), facts=facts)


def steps(first: int, last: int, start_s: float, seconds_per_step: float) -> list[Event]:
    """Metrics events of steps first..last, each `seconds_per_step` after the one before."""
    return [
        MetricsEvent(
            row={"step": float(step), "training_loss": 1.0},
            metrics={"step": step},
            elapsed_s=start_s + (step - first + 1) * seconds_per_step,
        )
        for step in range(first, last + 1)
    ]


@pytest.fixture
def runner(settings: Settings) -> JobRunner:
    runner = JobRunner(settings, open_database(settings), BlobStore(settings.resolved_blob_url), WORKER)
    runner.trackers = TrackerSet({}, lambda _: None)
    return runner


def test_estimated_finish_moves_with_the_measured_step_time(runner: JobRunner) -> None:
    with runner.database.session() as session:
        job = job_store.add_job(
            session, id="ftjob-pace", api="fine_tuning.jobs", owner="default", model="tiny",
            training_file="file-x", hyperparameters={}, seed=1, status="running", worker_id=WORKER,
        )  # fmt: skip
    outcome = Outcome()

    def feed(events: list[Event]) -> int:
        """estimated_finish after the runner has recorded `events`."""
        runner._beat_and_record(job, list(events), outcome)
        with runner.database.session() as session:
            finish = job_store.get_job(session, owner="default", job_id=job.id).estimated_finish
        assert finish is not None
        return finish

    def left(finish: int) -> int:
        return finish - ids.now()

    near = {"rel": REVISE_SHARE, "abs": 3}  # a finish is rewritten only when it moved more than this
    # The forecast first: 50 s. Then steps that take 2 s each: 90 steps left, 180 s.
    assert left(feed([announced(estimated_seconds=50)])) == pytest.approx(50, abs=3)
    assert left(feed(steps(1, 10, 0.0, 2.0))) == pytest.approx(90 * 2.0, **near)
    # The machine gets busier (6 s a step): measured from step 1, 78 s over 19 steps, and 80 left.
    pace = (80.0 - 2.0) / 19
    slower = feed(steps(11, 20, 20.0, 6.0))
    assert left(slower) == pytest.approx(80 * pace, **near)
    # A step at the pace so far costs no write: the finish stays where it was.
    assert feed(steps(21, 21, 80.0, pace)) == slower

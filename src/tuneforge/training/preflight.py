"""The dry run of a job: its spec resolved, its data read and tokenised exactly as the run will (the
recipe's own `plan`), its model counted on the meta device, and its time and memory estimated at this
machine's measured pace. Nothing is trained, written or queued; a warm-up's measurement is kept in the
data dir, where the next preflight (and the run's own first estimate) finds it."""

from __future__ import annotations

import torch

from tuneforge.graders import Scorer
from tuneforge.settings import Settings
from tuneforge.spec import Preflight, TrainJob
from tuneforge.training import estimate, modeling, recipe
from tuneforge.training.events import NullSink

WARM_UP_STEPS = 3  # timed steps at least: one step's time varies with the batch's lengths
WARM_UP_SECONDS = 2.0  # and at least this long, so a model of millisecond steps is timed over many


def preflight(job: TrainJob, settings: Settings, *, scorer: Scorer | None = None) -> Preflight:
    """`scorer`: a reinforcement grader's models, which the warm-up's steps ask (recipe.train)."""
    recipe.setup_threads(job, settings)  # the pace depends on the threads the run will get
    plan = recipe.plan(job, settings, NullSink())
    hp = plan.hp
    lora = {"r": hp.lora_r, "alpha": hp.lora_alpha, "dropout": hp.lora_dropout}
    model = modeling.count_for_training(plan.lineage, settings, hp.tuning, lora)
    work = recipe.workload(plan, model, settings.gradient_checkpointing)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    cost = _pace(plan, settings, work, device, scorer)
    per_epoch = work.trained_tokens // hp.n_epochs
    return Preflight(
        hyperparameters=hp,
        data_format=plan.data_format,
        n_train_examples=len(plan.train),
        n_validation_examples=len(plan.valid),
        steps_per_epoch=hp.total_steps // hp.n_epochs,
        total_steps=hp.total_steps,
        trained_tokens_per_epoch=per_epoch,
        trained_tokens=work.trained_tokens,
        n_parameters=work.n_parameters,
        trainable_parameters=work.trainable_parameters,
        estimate=estimate.forecast(cost, work, device, recipe.RUNTIME_BYTES),
    )


def _pace(
    plan: recipe.Plan,
    settings: Settings,
    work: estimate.Workload,
    device: torch.device,
    scorer: Scorer | None,
) -> estimate.Observation:
    """This machine's measured cost of a token for a run like this one: from the cache, or a warm-up of a
    few real steps (then cached)."""
    calibration = estimate.Calibration(settings)
    key = recipe.calibration_key(plan, device)
    known = calibration.lookup(key, work.tokens_per_step)
    if known is not None:
        return known
    measured = recipe.warm_up(plan, settings, WARM_UP_STEPS, WARM_UP_SECONDS, scorer=scorer)
    calibration.record(key, measured)
    return measured

"""The fine-tuning recipe behind `tuneforge train` and the worker's training child: read and encode the
data, resolve the "auto" hyperparameters, set up the model (LoRA or full), train with grouped batches,
evaluate, save resume states and model checkpoints, and write an HF-format output directory. It takes a
`TrainJob` (the job's `TrainSpec` plus where things are) and reports every step through an `EventSink`.

Read `train` top to bottom; each named step below is a short function."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from tuneforge.data.readers import read_preference_pairs, read_records, read_reinforcement_items
from tuneforge.data.records import PreferencePair, Record, ReinforcementItem
from tuneforge.errors import InvalidRequest, TrainingFailed
from tuneforge.graders import Grader, Grading, Scorer, models, validate
from tuneforge.settings import Settings
from tuneforge.spec import MethodType, ReinforcementMethod, ResolvedHyperparameters, TrainJob, Tuning
from tuneforge.training import (
    artifacts,
    classify,
    distributed,
    estimate,
    formats,
    hyperparameters,
    metrics,
    modeling,
    preference,
    reinforcement,
)
from tuneforge.training.batches import MICRO_BATCH_TOKENS, collate, epoch_batches, micro_batches
from tuneforge.training.events import (
    CheckpointEvent,
    DoneEvent,
    EventSink,
    HyperparametersEvent,
    MetricsEvent,
    NullSink,
    RunFacts,
    message,
)
from tuneforge.training.formats import Example
from tuneforge.training.metrics import ClassificationSpec, Tally
from tuneforge.training.preference import PairExample
from tuneforge.training.reinforcement import PromptItem

# Supervised runs train on examples, DPO runs on pairs, reinforcement runs on prompts to sample answers to.
TrainItem = Example | PairExample | PromptItem
AnyRecord = Record | PreferencePair | ReinforcementItem

EVALS_PER_RUN = 10  # validation rows at a regular interval, plus one at the end
METRIC_EVENTS_PER_RUN = 200  # metrics events sent to the worker; results.csv still gets every step
MAX_CONTEXT = 4096  # longest example trained on; longer ones are cut (the API warns on upload)
CALIBRATE_MIN_STEPS = 10  # fewer steps than this measure start-up more than pace
WARM_UP_MAX_STEPS = 24  # a preflight warm-up's timed steps stop here even when they are very short
WARM_UP_EVAL_EXAMPLES = 64  # validation examples a warm-up's validation passes read
# This process's resident memory with torch, transformers and peft imported and no model loaded: the floor
# a trainer starts from on this machine, in the preflight's estimate and the run's own announcement alike.
RUNTIME_BYTES = estimate.runtime_bytes()


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    trained_tokens: int
    metrics: dict[str, float]
    hyperparameters: ResolvedHyperparameters
    model: Any = field(default=None, repr=False)  # the trained model, still in memory (tests, benches)
    train_seconds: float = 0.0  # optimizer steps and DPO's reference pass (no evaluation, loading, saving)
    train_cpu_seconds: float = 0.0  # the same in CPU time, which counts no wait for a busy machine's cores


class TrainingInterrupted(TrainingFailed):
    """SIGTERM arrived: the run stopped at a step boundary; the resume state stays for --resume."""

    default_code = "interrupted"


class TrainerBusy(TrainingFailed):
    """Another live process trains in this run's directory (a worker that lost its database)."""

    default_code = "trainer_busy"


@dataclass
class RunState:
    """Where training stands; saved with every resume state so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # the next batch of `epoch`
    elapsed_tokens: int = 0  # real (non-padding) tokens trained on
    elapsed_examples: int = 0
    train_seconds: float = 0.0
    train_cpu_seconds: float = 0.0
    eval_seconds: float = 0.0  # in validation passes, over eval_tokens: the estimate's measured eval pace
    eval_tokens: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    best_loss: float | None = None  # the lowest validation loss seen (early stopping keeps its weights)
    best_step: int = 0
    evals_since_best: int = 0


@dataclass
class Run:
    """Everything the loop needs, built by the setup steps."""

    job: TrainJob
    method: MethodType
    hp: ResolvedHyperparameters
    lineage: modeling.Lineage
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train: list[TrainItem]
    valid: list[TrainItem]
    data_format: str
    stop: list[str]
    classification: ClassificationSpec | None
    device: torch.device
    state: RunState
    csv: artifacts.ResultsCsv | None  # rank 0 only
    checkpoint_every: int
    keep_checkpoints: int
    gradient_checkpointing: bool
    ranks: distributed.Ranks
    best_weights: dict[str, torch.Tensor] | None = None  # trainable weights at state.best_step, on the CPU
    rft: Reinforcement | None = None  # reinforcement runs only
    loop_started: float = 0.0  # time.monotonic() when this attempt's first step began
    calibration: estimate.Calibration | None = None  # where measured paces are kept (None: nowhere)

    @property
    def output_dir(self) -> Path:
        return self.job.output_dir


@dataclass
class Reinforcement:
    """What a reinforcement run needs beyond the model: the grader, and the starting model to stay near."""

    grader: reinforcement.Grader
    reference: Any  # a callable giving a context in which the model computes as the starting model


def train(job: TrainJob, settings: Settings, sink: EventSink, *, scorer: Scorer | None = None) -> TrainResult:
    """`scorer`: how a reinforcement grader's model graders reach their models (inference/scorer.py)."""
    setup_threads(job, settings)
    ranks = distributed.setup()
    sink = sink if ranks.main else NullSink()
    try:
        with _own_directory(job.output_dir, ranks), _stop_on_sigterm() as stop_requested:
            run = _setup(plan(job, settings, sink, ranks), settings, sink, ranks, scorer)
            _announce(run, sink)
            _train_loop(run, sink, stop_requested)
            final = _finish(run, sink)
    finally:
        distributed.teardown(ranks)
    sink.emit(
        DoneEvent(
            output_dir=job.output_dir.resolve(),
            trained_tokens=run.state.elapsed_tokens,
            step=run.state.step,
            metrics=metrics.openai_names(final, run.hp.total_steps),
        )
    )
    return TrainResult(
        output_dir=job.output_dir,
        step=run.state.step,
        trained_tokens=run.state.elapsed_tokens,
        metrics=final,
        hyperparameters=run.hp,
        model=_unwrap(run.model),
        train_seconds=run.state.train_seconds,
        train_cpu_seconds=run.state.train_cpu_seconds,
    )


# --- setup -------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a run will train, settled before any model is built: the data read and encoded, the "auto"
    values resolved. The preflight stops here; a run goes on to `_setup`."""

    job: TrainJob
    method: MethodType
    lineage: modeling.Lineage
    tokenizer: Any
    hp: ResolvedHyperparameters
    records: Sequence[AnyRecord]
    valid_records: Sequence[AnyRecord]
    train: list[TrainItem]
    valid: list[TrainItem]
    resume: Path | None

    @property
    def data_format(self) -> str:
        by_method = {"dpo": "preference", "reinforcement": "reinforcement"}
        return by_method.get(self.method) or formats.data_format(_supervised(self.records))


def plan(job: TrainJob, settings: Settings, sink: EventSink, ranks: distributed.Ranks | None = None) -> Plan:
    method = job.spec.method.type
    records = _read_records(job.training_path, "training_file", method)
    valid_records = _read_records(job.validation_path, "validation_file", method)
    lineage = modeling.lineage(job.model_source, settings)
    _build_base_once(lineage, settings, ranks or distributed.Ranks())
    from tuneforge.training import base_models

    tokenizer = base_models.load_tokenizer(lineage.ref, settings)
    formats.ensure_chat_template(tokenizer)
    max_len = min(int(getattr(tokenizer, "model_max_length", 1024) or 1024), MAX_CONTEXT)
    resume = artifacts.latest_resume_state(job.output_dir) if job.resume else None
    hp = _resolve_hyperparameters(job, settings, lineage, records, resume)
    max_prompt = max_len - (hp.max_sample_tokens or 0)  # a reinforcement prompt leaves room to answer
    return Plan(
        job=job,
        method=method,
        lineage=lineage,
        tokenizer=tokenizer,
        hp=hp,
        records=records,
        valid_records=valid_records,
        train=_encode_all(records, tokenizer, hp.prompt_loss_weight, max_prompt, sink, "training"),
        valid=_encode_all(valid_records, tokenizer, hp.prompt_loss_weight, max_prompt, sink, "validation"),
        resume=resume,
    )


def _supervised(records: Sequence[AnyRecord]) -> list[Record]:
    return [r for r in records if not isinstance(r, PreferencePair | ReinforcementItem)]


def _setup(
    plan: Plan, settings: Settings, sink: EventSink, ranks: distributed.Ranks, scorer: Scorer | None = None
) -> Run:
    job, method, hp, resume, tokenizer = plan.job, plan.method, plan.hp, plan.resume, plan.tokenizer
    lineage, train_items, valid_items = plan.lineage, plan.train, plan.valid
    supervised, valid_supervised = _supervised(plan.records), _supervised(plan.valid_records)
    classification = classify.label_spec(job.spec.classification, supervised, valid_supervised, tokenizer)
    device = distributed.device(ranks)
    torch.manual_seed(hp.seed)
    whole = _setup_model(lineage, settings, hp, resume)  # every rank builds it whole, on the CPU, alike
    ranks = distributed.choose_sharding(ranks, settings.train_sharding, whole, device)
    model = distributed.wrap(whole, ranks, device)
    optimizer, scheduler = _setup_optimizer(model, hp)
    saved = artifacts.load_state(resume) if resume is not None else None
    state = _restore(saved, model, optimizer, scheduler, sink, ranks)
    if method == "dpo":  # the reference is the starting model: computed once, kept with the resume state
        clock = _Clock()
        train_items, valid_items = (
            _with_reference(_unwrap(model), items, saved, key, tokenizer.pad_token_id, device)
            for items, key in ((train_items, "reference"), (valid_items, "valid_reference"))
        )
        clock.add_to(state)  # training work, as the reference passes TRL makes at every step are
    rft = (
        _setup_reinforcement(job, settings, lineage, hp, _unwrap(model), sink, scorer)
        if method == "reinforcement"
        else None
    )
    columns = _columns(method, bool(valid_items), classification)
    return Run(
        job=job,
        method=method,
        hp=hp,
        lineage=plan.lineage,
        tokenizer=tokenizer,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train=train_items,
        valid=valid_items,
        data_format=plan.data_format,
        stop=formats.stop_sequences(supervised),
        classification=classification,
        device=device,
        state=state,
        csv=artifacts.ResultsCsv(job.output_dir / "results.csv", columns, state.rows) if ranks.main else None,
        checkpoint_every=max(1, job.checkpoint_every or settings.checkpoint_every_steps),
        keep_checkpoints=settings.keep_checkpoints,
        gradient_checkpointing=settings.gradient_checkpointing,
        ranks=ranks,
        best_weights=saved.get("best") if saved is not None else None,
        rft=rft,
        calibration=estimate.Calibration(settings) if ranks.main else None,
    )


def _setup_reinforcement(
    job: TrainJob,
    settings: Settings,
    lineage: modeling.Lineage,
    hp: ResolvedHyperparameters,
    model: Any,
    sink: EventSink,
    scorer: Scorer | None,
) -> Reinforcement:
    """The grader as the API validated it, with the scorer its model graders ask, and the reference: the
    fresh adapter switched off, or (full tuning, or LoRA continuing an earlier adapter) a frozen copy of
    the starting weights, loaded from the lineage so that a resumed run keeps the same reference."""
    assert isinstance(job.spec.method, ReinforcementMethod)
    grader = TypeAdapter(Grader).validate_python(job.spec.method.grader)
    validate(grader)
    if models(grader) and scorer is None:  # else every sample would score 0 with a warning
        name, model = models(grader)[0]
        raise InvalidRequest(
            f"Grader '{name}' asks the model '{model}', but this run has no engine to serve it",
            param="method.reinforcement.grader",
        )
    frozen = None
    fresh_adapter = hp.tuning == "lora" and not (
        lineage.parent_manifest is not None and lineage.parent_manifest["method"] == "lora"
    )
    if not fresh_adapter:
        lora = {"r": hp.lora_r, "alpha": hp.lora_alpha, "dropout": hp.lora_dropout}
        frozen = modeling.load_for_training(lineage, settings, "full", lora, hp.seed)
        frozen = frozen.to(next(model.parameters()).device).eval().requires_grad_(False)
    return Reinforcement(
        grader=reinforcement.Grader(
            grader,
            Grading.from_settings(settings, scorer=scorer),
            lambda text: sink.emit(message(text, "warning")),
        ),
        reference=reinforcement.reference_context(model, frozen),
    )


def warm_up(
    plan: Plan, settings: Settings, steps: int, seconds: float, *, scorer: Scorer | None = None
) -> estimate.Observation:
    """Time real optimizer steps of the run's own first batches on a throwaway model: at least `steps` and
    `seconds`, at most WARM_UP_MAX_STEPS, after an untimed pass over the same batches (about `seconds` of
    it). The preflight's measure of this machine when it has not measured a run like this one yet."""
    setup_threads(plan.job, settings)
    lengths = [_tokens(item) for item in plan.train]
    order = epoch_batches(lengths, plan.hp.batch_size, plan.hp.seed, 0)
    batches = [[plan.train[i] for i in order[k % len(order)]] for k in range(WARM_UP_MAX_STEPS)]
    with tempfile.TemporaryDirectory(prefix="tuneforge-warm-up-") as scratch:
        job = plan.job.model_copy(update={"output_dir": Path(scratch), "resume": False})
        sample = [item for batch in batches for item in batch]
        valid = plan.valid[:WARM_UP_EVAL_EXAMPLES]
        trial = dataclasses.replace(plan, job=job, train=sample, valid=valid, resume=None)
        run = _setup(trial, settings, NullSink(), distributed.Ranks(), scorer)
        # the run's own items: a DPO run's carry their reference log-probabilities
        bounds = list(itertools.accumulate((len(b) for b in batches), initial=0))
        batches = [run.train[a:b] for a, b in itertools.pairwise(bounds)]
        # A process's first step at each shape of batch costs more than the same step later (allocator and
        # kernel set-up): the first warm-up of a process timed without this pass read 1.3x a run's pace.
        _repeat_steps(run, batches, 1, seconds)
        if run.valid:
            _evaluate(run)
        timed, tokens, elapsed = _repeat_steps(run, batches, steps, seconds)
        if run.valid:  # one validation pass, timed: its pace is not the training step's
            _timed_evaluate(run)
    return estimate.observed(tokens, timed, elapsed, "warm-up", run.state.eval_tokens, run.state.eval_seconds)


def _repeat_steps(
    run: Run, batches: list[list[TrainItem]], steps: int, seconds: float
) -> tuple[int, int, float]:
    """Train the batches in turn, at least `steps` of them and `seconds` long, at most one pass: (steps
    taken, tokens trained, seconds)."""
    start, taken, tokens = time.perf_counter(), 0, 0
    for batch in batches:
        _train_step(run, batch)
        _synchronize(run.device)
        taken, tokens = taken + 1, tokens + sum(_tokens(item) for item in batch)
        if taken >= steps and time.perf_counter() - start >= seconds:
            break
    return taken, tokens, time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup_threads(job: TrainJob, settings: Settings) -> None:
    threads = job.threads or settings.train_threads
    if threads:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _own_directory(output_dir: Path, ranks: distributed.Ranks) -> Iterator[None]:
    """One trainer per run directory: a second one (a worker that lost its database while its child
    trained on) would resume from, and overwrite, the first one's files."""
    if not ranks.main:  # rank 0 holds the lock for the whole group
        yield
        return
    with artifacts.trainer_lock(output_dir) as mine:
        if not mine:
            raise TrainerBusy("Another training process is still running this job; it was not started twice.")
        yield


def _build_base_once(lineage: modeling.Lineage, settings: Settings, ranks: distributed.Ranks) -> None:
    """Rank 0 builds a built-in base on first use while the others wait: transformers writes no weights
    from ranks other than 0, so a rank's own build would be a directory without a model."""
    if ranks.main:
        modeling.materialize(lineage, settings)
    distributed.barrier(ranks)


def _read_records(path: Path | None, param: str, method: MethodType) -> Sequence[AnyRecord]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise InvalidRequest(f"The {param.replace('_', ' ')} '{path}' does not exist.", param=param)
    if method == "reinforcement":
        return read_reinforcement_items(Path(path))
    return read_preference_pairs(Path(path)) if method == "dpo" else read_records(Path(path))


def _encode_all(
    records: Sequence[AnyRecord],
    tokenizer: Any,
    plw: float,
    max_len: int,
    sink: EventSink,
    what: str,
) -> list[TrainItem]:
    examples: list[TrainItem] = []
    for record in records:
        if isinstance(record, PreferencePair):
            examples += preference.encode_pairs([record], tokenizer, max_len)
        elif isinstance(record, ReinforcementItem):
            examples += reinforcement.encode_items([record], tokenizer, max_len)
        else:
            examples.append(formats.encode(record, tokenizer, plw, max_len))
    kept = [e for e in examples if _learnable(e)]
    if len(kept) < len(examples):
        sink.emit(
            message(
                f"Skipped {len(examples) - len(kept)} {what} examples with nothing to learn "
                "(an empty completion or no weighted assistant turn).",
                "warning",
            )
        )
    if records and not kept:
        raise InvalidRequest(f"No {what} example has a completion to learn.", param=f"{what}_file")
    return kept


def _learnable(item: TrainItem) -> bool:
    if isinstance(item, PromptItem):
        return True  # its answers are sampled
    examples = (item.chosen, item.rejected) if isinstance(item, PairExample) else (item,)
    return all(len(e.ids) >= 2 and any(e.target[1:]) for e in examples)


def _with_reference(
    model: Any,
    items: list[TrainItem],
    saved: dict[str, Any] | None,
    key: str,
    pad_id: int,
    device: torch.device,
) -> list[TrainItem]:
    pairs = [item for item in items if isinstance(item, PairExample)]
    if saved is not None and key in saved:
        reference = saved[key]
        return [
            PairExample(p.chosen, p.rejected, chosen, rejected)
            for p, (chosen, rejected) in zip(pairs, reference, strict=True)
        ]
    return list(preference.with_reference(model, pairs, pad_id, device))


def _resolve_hyperparameters(
    job: TrainJob,
    settings: Settings,
    lineage: modeling.Lineage,
    records: Sequence[AnyRecord],
    resume: Path | None,
) -> ResolvedHyperparameters:
    if resume is not None:  # a resumed run keeps the values it started with, "auto" included
        saved = artifacts.read_manifest(resume)
        assert saved is not None
        return ResolvedHyperparameters.model_validate(saved["hyperparameters"])
    seed = job.spec.seed if job.spec.seed is not None else random.SystemRandom().randrange(2**31)
    return hyperparameters.resolve(
        job.spec,
        n_examples=len(records),
        builtin=lineage.builtin,
        classes=hyperparameters.count_classes(formats.final_completions(_supervised(records))),
        auto_tuning=_auto_tuning(lineage, settings),
        seed=seed,
    )


def _auto_tuning(lineage: modeling.Lineage, settings: Settings) -> Tuning:
    if lineage.parent_manifest is not None:  # continuing a fine-tune: keep how it was tuned
        parent: Tuning = lineage.parent_manifest["method"]
        return parent
    builtin = lineage.builtin
    if builtin:  # an operator may prefer adapters, which serve many to a base (docs/serving.md)
        return settings.builtin_tuning
    return hyperparameters.auto_tuning(
        builtin, 0 if builtin else modeling.count_parameters(lineage, settings)
    )


def _setup_model(
    lineage: modeling.Lineage, settings: Settings, hp: ResolvedHyperparameters, resume: Path | None
) -> Any:
    if resume is not None:
        model = modeling.load_checkpoint_model(lineage, settings, hp.tuning, resume)
    else:
        lora = {"r": hp.lora_r, "alpha": hp.lora_alpha, "dropout": hp.lora_dropout}
        model = modeling.load_for_training(lineage, settings, hp.tuning, lora, hp.seed)
    if settings.gradient_checkpointing:
        modeling.checkpoint_activations(model)
    return model


def _setup_optimizer(
    model: Any, hp: ResolvedHyperparameters
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=hp.learning_rate, weight_decay=hp.weight_decay, betas=(0.9, 0.99), foreach=True
    )
    total = hp.total_steps

    def ramp_then_decay(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < hp.warmup_steps:
            return (step + 1) / hp.warmup_steps
        return max(0.0, (total - step) / max(1, total - hp.warmup_steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, ramp_then_decay)


def _restore(
    saved: dict[str, Any] | None,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    sink: EventSink,
    ranks: distributed.Ranks,
) -> RunState:
    if saved is None:
        return RunState()
    distributed.load_optimizer_state(model, optimizer, saved["optimizer"], ranks)
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_states(saved["rng"])
    sink.emit(message(f"Resuming from step {saved['run']['step']}."))
    return RunState(**saved["run"])


def _columns(method: MethodType, has_valid: bool, spec: ClassificationSpec | None) -> list[str]:
    if method == "dpo":
        return preference.COLUMNS + (preference.VALIDATION_COLUMNS if has_valid else [])
    if method == "reinforcement":
        return reinforcement.COLUMNS + (reinforcement.VALIDATION_COLUMNS if has_valid else [])
    columns = metrics.RESULTS_COLUMNS if has_valid else metrics.TRAINING_COLUMNS
    if spec is None:
        return list(columns)
    if spec.positive_class is None:
        return [*columns, "classification/accuracy", "classification/weighted_f1_score"]
    betas = [f"classification/f{float(b)}" for b in spec.betas if float(b) != 1.0]
    return [
        *columns,
        "classification/accuracy",
        "classification/precision",
        "classification/recall",
        "classification/auroc",
        "classification/auprc",
        "classification/f1.0",
        *betas,
    ]


def _announce(run: Run, sink: EventSink) -> None:
    """The first events: resolved hyperparameters, why, and how long (and how much memory) to expect;
    on a resumed run, the model checkpoints already saved (the worker lists each once)."""
    work = workload(run, _unwrap(run.model), run.gradient_checkpointing)
    n_params, trainable, tokens = work.n_parameters, work.trainable_parameters, work.trained_tokens
    known = run.calibration.lookup(calibration_key(run), work.tokens_per_step) if run.calibration else None
    cost = known or estimate.flops_observation(n_params, trainable, run.device)  # the worker revises it
    forecast = estimate.forecast(cost, work, run.device, RUNTIME_BYTES)
    facts = RunFacts(
        n_train_examples=len(run.train),
        n_validation_examples=len(run.valid),
        n_parameters=n_params,
        trainable_parameters=trainable,
        device=str(run.device),
        data_format=run.data_format,
        estimated_seconds=forecast.seconds,
        estimated_peak_gib=round((forecast.peak_gpu_bytes or forecast.peak_cpu_bytes) / 2**30, 3),
        calibration=cost.source,
    )
    sink.emit(HyperparametersEvent(resolved=run.hp, facts=facts))
    for key, line in run.hp.reasons.items():
        sink.emit(message(f"Auto hyperparameter {key}={line}."))
    text = f"Training {n_params / 1e6:.1f}M parameters ({trainable / 1e6:.2f}M trainable, {run.hp.tuning}) "
    text += f"on {run.device.type} for {run.hp.total_steps} steps, about {tokens:,} tokens: "
    text += f"estimated {facts.estimated_seconds / 60:.1f} minutes ({_calibration_said[cost.source]})"
    text += (
        f", about {facts.estimated_peak_gib:.2f} GiB of {'GPU ' if run.device.type == 'cuda' else ''}memory"
    )
    sink.emit(message(text + "."))
    if run.method == "reinforcement":
        sink.emit(message(_reinforcement_plan(run.hp)))
    for path in artifacts.model_checkpoints(run.output_dir):
        manifest = artifacts.read_manifest(path) or {}
        metrics_ = metrics.openai_names(manifest.get("metrics") or {}, run.hp.total_steps)
        sink.emit(CheckpointEvent(step=artifacts.step_of(path), path=path.resolve(), metrics=metrics_))


def _reinforcement_plan(hp: ResolvedHyperparameters) -> str:
    return (
        f"Reinforcement: {hp.samples_per_prompt} samples per prompt at temperature {hp.temperature}, "
        f"KL weight {hp.beta}, ratio clip {hp.clip_epsilon}. reasoning_effort={hp.reasoning_effort}: "
        f"answers of up to {hp.max_sample_tokens} tokens (low 128, default and medium 256, high 512); "
        "the models here have no separate reasoning phase, so that is all it changes."
    )


_calibration_said = {
    "run": "at the pace an earlier run measured here",
    "warm-up": "at the pace a warm-up measured here",
    "flops": "from model FLOPs; revised once steps are measured",
}


def workload(run: Run | Plan, model: Any, checkpointing: bool) -> estimate.Workload:
    """What the run computes and holds: its tokens from the encoded data, its sizes from the model (a real
    one, or the preflight's meta-device copy)."""
    hp = run.hp
    lengths = [_tokens(item) for item in run.train]
    longest = max(lengths, default=1)
    per_epoch, valid_tokens = sum(lengths), sum(_tokens(item) for item in run.valid)
    steps_per_epoch = max(1, -(-len(lengths) // hp.batch_size))
    every_eval = run.job.eval_every or hp.eval_interval or max(1, hp.total_steps // EVALS_PER_RUN)
    return estimate.Workload(
        n_parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        shape=modeling.shape(model),
        trained_tokens=hp.n_epochs * per_epoch,
        tokens_per_step=per_epoch / steps_per_epoch,
        validation_tokens=valid_tokens,
        evaluations=estimate.evaluations(hp.total_steps, every_eval, bool(run.valid)),
        # the batch of the longest examples, split as `micro_batches` splits it (never below one example)
        micro_tokens=min(hp.batch_size * longest, max(MICRO_BATCH_TOKENS, longest)),
        held_tokens=per_epoch + valid_tokens,
        checkpointing=checkpointing,
    )


def calibration_key(run: Run | Plan, device: torch.device | None = None) -> str:
    """A fine-tune has its base's architecture, so it shares its base's measured pace."""
    lineage = run.lineage
    model = lineage.parent_manifest["base_model"]["name"] if lineage.parent_manifest else lineage.base["name"]
    where = device or (run.device if isinstance(run, Run) else torch.device("cpu"))
    return estimate.calibration_key(model, run.hp.tuning, where)


# --- the loop ----------------------------------------------------------------------------------------


def _train_loop(run: Run, sink: EventSink, stop_requested: threading.Event) -> None:
    hp, state = run.hp, run.state
    every_eval = run.job.eval_every or hp.eval_interval or max(1, hp.total_steps // EVALS_PER_RUN)
    every_event = max(1, hp.total_steps // METRIC_EVENTS_PER_RUN)
    lengths = [_tokens(item) for item in run.train]
    run.loop_started = time.monotonic()
    while state.epoch < hp.n_epochs:
        batches = epoch_batches(lengths, hp.batch_size, hp.seed, state.epoch)
        while state.batch_index < len(batches):
            if distributed.any_rank(stop_requested.is_set(), run.ranks):  # a pause, shutdown or cancel
                _save_resume_state(run)
                raise TrainingInterrupted("Training stopped by SIGTERM; resume with --resume.")
            examples = [run.train[i] for i in batches[state.batch_index]]
            row = _train_step(run, examples)
            state.batch_index += 1
            last = state.step == hp.total_steps
            eval_step = bool(run.valid) and state.step % every_eval == 0 and not last
            evaluated = eval_step and _evaluates(run)
            if evaluated:
                row.update(_timed_evaluate(run))
            _record(run, sink, row, emit=last or evaluated or state.step % every_event == 0)
            if eval_step and _stops_early(run, row, sink):
                return
            if state.step % run.checkpoint_every == 0 and state.batch_index < len(batches):
                _save_resume_state(run)
        state.epoch, state.batch_index = state.epoch + 1, 0
        if state.epoch < hp.n_epochs:  # the last epoch's checkpoint is the final model itself
            if state.epoch >= hp.n_epochs - (run.keep_checkpoints - 1):  # as OpenAI: the last epochs only
                _save_model_checkpoint(run, sink)
            _save_resume_state(run)


def _stops_early(run: Run, row: dict[str, float], sink: EventSink) -> bool:
    """Early stopping: keep the weights of the lowest validation loss; stop once `patience` validation
    passes in a row found none lower, or (where the run asks) at a lowest pass that answers every
    validation example exactly."""
    patience = _patience(run)
    if patience is None:
        return False
    why = ""
    if run.ranks.main:
        _track_best(run, row)
        state = run.state
        if state.evals_since_best >= patience:
            why = (
                f"the validation loss has not improved for {patience} evaluations (best "
                f"{state.best_loss:.4f} at step {state.best_step})"
            )
        elif run.hp.stop_when_exact and state.evals_since_best == 0 and _answers_all(row):
            why = (
                f"every validation example is answered exactly, at the lowest validation loss so far "
                f"({state.best_loss:.4f})"
            )
    if not distributed.agree(bool(why), run.ranks, run.device):
        return False
    if run.ranks.main:
        sink.emit(message(f"Stopped early at step {run.state.step} of {run.hp.total_steps}: {why}."))
    return True


def _answers_all(row: dict[str, float]) -> bool:
    """Every validation completion token was the model's most likely one: greedy decoding reproduces them."""
    return row.get("validation_sequence_accuracy") == 1.0


def _patience(run: Run) -> int | None:
    """Early stopping's patience; none under FSDP, where each rank holds only a shard of the best
    weights and the resume state keeps rank 0's alone."""
    return None if run.ranks.sharded else run.hp.early_stopping_patience


def _track_best(run: Run, row: dict[str, float]) -> None:
    state, loss = run.state, row["validation_loss"]
    if state.best_loss is not None and not loss < state.best_loss:
        state.evals_since_best += 1
        return
    state.best_loss, state.best_step, state.evals_since_best = loss, state.step, 0
    run.best_weights = {  # only trainable weights change, so they alone are copied
        name: p.detach().to("cpu", copy=True)
        for name, p in _unwrap(run.model).named_parameters()
        if p.requires_grad
    }


def _keep_best(run: Run, sink: EventSink, final: dict[str, float]) -> dict[str, float]:
    """At the end of an early-stopping run, go back to the best weights seen if the last are worse; the
    final metrics then are that step's validation metrics."""
    state = run.state
    if run.best_weights is None or state.best_step == state.step:
        return final
    model = _unwrap(run.model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in run.best_weights:
                p.copy_(run.best_weights[name].to(p.device))
    best_row = next(row for row in state.rows if row["step"] == state.best_step)
    kept = {k: v for k, v in best_row.items() if k.startswith(("validation_", "classification/"))}
    sink.emit(
        message(
            f"Kept the weights of step {state.best_step} (validation loss {state.best_loss:.4f}), the best "
            f"seen; the last step's validation loss was {final.get('validation_loss', float('nan')):.4f}."
        )
    )
    return {**final, **kept}


def _train_step(run: Run, items: Sequence[TrainItem]) -> dict[str, float]:
    """One optimizer step over a batch: the method's loss, accumulated over micro-batches, then the step."""
    clock = _Clock()
    run.model.train()
    mine, factor = distributed.shard(items, run.ranks)
    tokens, examples = sum(_tokens(item) for item in items), len(items)
    with _autocast(run.device):
        if run.method == "reinforcement":  # one process: the worker never launches it under torchrun
            step = _reinforcement_step(run, mine, factor * len(mine) / len(items))
            losses, tokens, examples = step.row, step.tokens, step.samples
        else:
            losses = distributed.sum_tally(_accumulate(run, mine, items, factor), run.ranks).as_row(
                "training"
            )
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state = run.state
    state.step += 1
    state.elapsed_tokens += tokens
    state.elapsed_examples += examples
    clock.add_to(state)
    row = {
        "step": float(state.step),
        "elapsed_tokens": float(state.elapsed_tokens),
        "elapsed_examples": float(state.elapsed_examples),
        **losses,
    }
    if not math.isfinite(row.get("training_loss", 0.0)):
        raise TrainingFailed(
            f"The training loss became {row['training_loss']} at step {state.step}; "
            "lower learning_rate_multiplier.",
            param="learning_rate_multiplier",
        )
    return row


class _Clock:
    """Wall and CPU time since it was made, added to the run's training time. CPU time counts finished
    child processes too: a reinforcement step's python grader runs in a sandbox process of its own."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()

    def add_to(self, state: RunState) -> None:
        state.train_seconds += time.perf_counter() - self.wall
        state.train_cpu_seconds += _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


def _accumulate(
    run: Run, mine: Sequence[TrainItem], items: Sequence[TrainItem], factor: float
) -> Tally | preference.RewardTally:
    """The supervised or DPO gradient of this rank's share of the step, and its tally."""
    if run.method == "dpo":
        assert run.hp.beta is not None
        pairs = [item for item in mine if isinstance(item, PairExample)]
        return preference.accumulate(
            run.model,
            pairs,
            run.hp.beta,
            run.tokenizer.pad_token_id,
            run.device,
            factor * len(mine) / len(items),
            run.ranks,
        )
    return _supervised_accumulate(run, [e for e in mine if isinstance(e, Example)], items, factor)


def _reinforcement_step(run: Run, mine: Sequence[TrainItem], factor: float) -> reinforcement.StepResult:
    """Sample this step's answers (seeded by the step, so a resumed run draws the same), grade them and
    accumulate the GRPO gradient."""
    assert run.rft is not None
    prompts = [item for item in mine if isinstance(item, PromptItem)]
    generator = reinforcement.step_generator(run.hp.seed, run.state.step, run.device)
    return reinforcement.train_step(
        run.model,
        run.rft.reference,
        prompts,
        run.rft.grader,
        run.tokenizer,
        run.hp,
        generator,
        run.device,
        factor,
    )


def _supervised_accumulate(
    run: Run, mine: Sequence[Example], step_items: Sequence[TrainItem], factor: float
) -> Tally:
    """Weighted cross-entropy over micro-batches split by a padded-token budget; dividing by the whole
    step's weight makes the accumulated gradient that of one batch. Only what this rank's loss counts
    (its share, not a zero-weight pass that keeps the ranks in step) goes into its tally."""
    total_weight = sum(sum(e.weights[1:]) for e in step_items if isinstance(e, Example)) or 1.0
    tally = Tally()
    micros = micro_batches(mine, run.tokenizer.pad_token_id)
    for micro, weight in distributed.lockstep(micros, run.model, run.ranks):
        batch = micro.to(run.device)
        logits = run.model(input_ids=batch.inputs, use_cache=False).logits
        losses = metrics.token_losses(logits, batch.labels)
        (metrics.weighted_loss(losses, batch.weights, total_weight) * factor * weight).backward()
        if factor * weight:
            tally.add(batch, logits, losses.detach())
    return tally


def _tokens(item: TrainItem) -> int:
    return item.tokens if isinstance(item, PairExample | PromptItem) else len(item.ids)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; plain float32 on CPU, where bf16 matmuls are slower and less exact."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _record(run: Run, sink: EventSink, row: dict[str, float], emit: bool) -> None:
    row = metrics.finite(row)
    run.state.rows.append(row)
    if run.csv is not None:
        run.csv.append(row)
    if emit:
        elapsed = round(time.monotonic() - run.loop_started, 3)
        sink.emit(
            MetricsEvent(row=row, metrics=metrics.openai_names(row, run.hp.total_steps), elapsed_s=elapsed)
        )


def _save_resume_state(run: Run) -> None:
    """Frequent and internal: what crash recovery, pause and --resume continue from."""
    weights = distributed.full_weights(run.model, run.ranks)  # collectives: every rank joins both
    optimizer = distributed.optimizer_state(run.model, run.optimizer, run.ranks)
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return
    state = {
        "optimizer": optimizer,
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_states(),
        "run": vars(run.state).copy(),
    }
    if run.best_weights is not None:
        state["best"] = run.best_weights
    if run.method == "dpo":
        state["reference"] = [(p.ref_chosen, p.ref_rejected) for p in run.train if isinstance(p, PairExample)]
        state["valid_reference"] = [
            (p.ref_chosen, p.ref_rejected) for p in run.valid if isinstance(p, PairExample)
        ]
    manifest = _manifest(run, _latest_metrics(run))
    artifacts.save_resume_state(_unwrap(run.model), run.tokenizer, manifest, state, run.output_dir, weights)
    distributed.barrier(run.ranks)  # no rank runs ahead of a state it could be resumed from


def _save_model_checkpoint(run: Run, sink: EventSink) -> None:
    """An epoch's model, listed by the API and callable like the final one."""
    weights = distributed.full_weights(run.model, run.ranks)
    if not run.ranks.main:
        return
    latest = _latest_metrics(run)
    path = artifacts.save_model_checkpoint(
        _unwrap(run.model), run.tokenizer, _manifest(run, latest), run.output_dir, weights
    )
    sink.emit(
        CheckpointEvent(
            step=run.state.step, path=path, metrics=metrics.openai_names(latest, run.hp.total_steps)
        )
    )
    if run.job.prune_checkpoints:
        artifacts.prune_model_checkpoints(run.output_dir, run.keep_checkpoints - 1)


def _latest_metrics(run: Run) -> dict[str, float]:
    merged: dict[str, float] = {}
    for row in run.state.rows:
        merged.update(row)
    return merged


# --- evaluation --------------------------------------------------------------------------------------


def _evaluate(run: Run) -> dict[str, float]:
    """Loss and accuracies over the whole validation file, and the classification columns."""
    model = _unwrap(run.model)  # no gradient sync to join; under FSDP every rank runs this in step
    model.eval()
    if run.method == "dpo":
        pairs = [item for item in run.valid if isinstance(item, PairExample)]
        assert run.hp.beta is not None
        return preference.evaluate(model, pairs, run.hp.beta, run.tokenizer.pad_token_id, run.device)
    if run.method == "reinforcement":
        assert run.rft is not None
        prompts = [item for item in run.valid if isinstance(item, PromptItem)]
        return reinforcement.evaluate(model, prompts, run.rft.grader, run.tokenizer, run.hp, run.device)
    valid = [item for item in run.valid if isinstance(item, Example)]
    tally = Tally()
    scorer = classify.LabelScorer(run.classification, valid) if run.classification else None
    with torch.no_grad():
        for chunk in _length_chunks(valid):
            batch = collate([valid[i] for i in chunk], run.tokenizer.pad_token_id).to(run.device)
            with _autocast(run.device):
                logits = model(input_ids=batch.inputs, use_cache=False).logits
            tally.add(batch, logits, metrics.token_losses(logits, batch.labels))
            if scorer is not None:
                scorer.add(chunk, logits)
        row = tally.as_row("validation")
        if scorer is not None:
            row.update(scorer.metrics(model, run.tokenizer.pad_token_id, run.device))
    return row


def _evaluates(run: Run) -> bool:
    """Rank 0 evaluates alone, except under FSDP, where each forward pass gathers weights from all ranks."""
    return run.ranks.main or run.ranks.sharded


def _timed_evaluate(run: Run) -> dict[str, float]:
    start = time.perf_counter()
    row = _evaluate(run)
    run.state.eval_seconds += time.perf_counter() - start
    run.state.eval_tokens += sum(_tokens(item) for item in run.valid)
    return row


def _length_chunks(examples: Sequence[Example]) -> Iterator[list[int]]:
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    chunk: list[int] = []
    for i in order:
        if chunk and len(examples[i].ids) * (len(chunk) + 1) > 8192:
            yield chunk
            chunk = []
        chunk.append(i)
    if chunk:
        yield chunk


# --- the end -----------------------------------------------------------------------------------------


def _finish(run: Run, sink: EventSink) -> dict[str, float]:
    """The final validation row, then the output directory (weights, tokenizer, manifest); the resume
    state goes, since a finished run is never resumed."""
    rows = run.state.rows
    finishing = run.valid and _evaluates(run) and rows and rows[-1]["step"] == run.state.step
    if finishing and "validation_loss" not in rows[-1]:
        row = rows.pop()
        row.update(_timed_evaluate(run))
        if run.csv is not None:
            run.csv = artifacts.ResultsCsv(run.csv.path, run.csv.columns, rows)
        _record(run, sink, row, emit=True)
        if _patience(run) is not None and run.ranks.main:
            _track_best(run, row)
    final = _keep_best(run, sink, _latest_metrics(run)) if run.ranks.main else {}
    weights = distributed.full_weights(run.model, run.ranks)
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return {}
    artifacts.write_model_files(
        _unwrap(run.model), run.tokenizer, _manifest(run, final), run.output_dir, weights
    )
    artifacts.discard_resume_state(run.output_dir)
    distributed.barrier(run.ranks)
    seconds = max(1e-9, run.state.train_seconds)
    _calibrate_from(run)
    sink.emit(
        message(
            f"Trained {run.state.elapsed_tokens:,} tokens in {seconds:.1f} s "
            f"({run.state.elapsed_tokens / seconds:,.0f} real tokens/s)."
        )
    )
    return final


def _calibrate_from(run: Run) -> None:
    """The run's own average pace is the best measure of the next run like it: kept for preflights and
    estimates (a resumed run's saved state carries the seconds of the steps before it)."""
    state = run.state
    if run.calibration is None or state.step < CALIBRATE_MIN_STEPS:
        return
    observation = estimate.observed(
        state.elapsed_tokens, state.step, state.train_seconds, "run", state.eval_tokens, state.eval_seconds
    )
    run.calibration.record(calibration_key(run), observation)


def _manifest(run: Run, final: dict[str, float]) -> dict[str, Any]:
    spec = run.classification
    return {
        "format_version": artifacts.FORMAT_VERSION,
        "base_model": run.lineage.base,
        "builtin_base": run.lineage.builtin,
        "parent_model": run.job.spec.model if run.lineage.parent_manifest else None,
        "method": run.hp.tuning,  # how the weights are stored: "lora" (an adapter) or "full"
        "hyperparameters": run.hp.model_dump(),
        "spec": run.job.spec.model_dump(mode="json"),
        "data_format": run.data_format,
        "eos_token": run.tokenizer.eos_token,
        "stop": run.stop,
        "classification": {"labels": spec.labels, "positive_class": spec.positive_class} if spec else None,
        "metrics": final,
        "trained_tokens": run.state.elapsed_tokens,
        "step": run.state.step,
        "suffix": run.job.spec.suffix,
    }


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


# --- process plumbing --------------------------------------------------------------------------------


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """SIGTERM sets a flag the loop checks between steps, so the child stops within one step."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)

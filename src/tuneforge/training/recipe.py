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

from tuneforge.data.readers import read_preference_pairs, read_records
from tuneforge.data.records import PreferencePair, Record
from tuneforge.errors import InvalidRequest, TrainingFailed
from tuneforge.settings import Settings
from tuneforge.spec import MethodType, ResolvedHyperparameters, TrainJob, Tuning
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

TrainItem = Example | PairExample  # supervised runs train on examples, DPO runs on pairs

EVALS_PER_RUN = 10  # validation rows at a regular interval, plus one at the end
METRIC_EVENTS_PER_RUN = 200  # metrics events sent to the worker; results.csv still gets every step
MAX_CONTEXT = 4096  # longest example trained on; longer ones are cut (the API warns on upload)
CALIBRATE_MIN_STEPS = 10  # fewer steps than this measure start-up more than pace
WARM_UP_MAX_STEPS = 12  # a preflight warm-up stops here even when its steps are very short
WARM_UP_EVAL_EXAMPLES = 64  # validation examples a warm-up's one timed validation pass reads


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    trained_tokens: int
    metrics: dict[str, float]
    hyperparameters: ResolvedHyperparameters
    model: Any = field(default=None, repr=False)  # the trained model, still in memory (tests, benches)
    train_seconds: float = 0.0  # time in optimizer steps only (no evaluation, loading or saving)


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
    eval_seconds: float = 0.0  # in validation passes, over eval_tokens: the estimate's measured eval pace
    eval_tokens: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)


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
    ranks: distributed.Ranks
    loop_started: float = 0.0  # time.monotonic() when this attempt's first step began
    calibration: estimate.Calibration | None = None  # where measured paces are kept (None: nowhere)

    @property
    def output_dir(self) -> Path:
        return self.job.output_dir


def train(job: TrainJob, settings: Settings, sink: EventSink) -> TrainResult:
    setup_threads(job, settings)
    ranks = distributed.setup()
    sink = sink if ranks.main else NullSink()
    try:
        with _own_directory(job.output_dir, ranks), _stop_on_sigterm() as stop_requested:
            run = _setup(plan(job, settings, sink), settings, sink, ranks)
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
    records: Sequence[Record | PreferencePair]
    valid_records: Sequence[Record | PreferencePair]
    train: list[TrainItem]
    valid: list[TrainItem]
    resume: Path | None

    @property
    def data_format(self) -> str:
        return "preference" if self.method == "dpo" else formats.data_format(_supervised(self.records))


def plan(job: TrainJob, settings: Settings, sink: EventSink) -> Plan:
    method = job.spec.method.type
    records = _read_records(job.training_path, "training_file", method)
    valid_records = _read_records(job.validation_path, "validation_file", method)
    lineage = modeling.lineage(job.model_source, settings)
    from tuneforge.training import base_models

    tokenizer = base_models.load_tokenizer(lineage.ref, settings)
    formats.ensure_chat_template(tokenizer)
    max_len = min(int(getattr(tokenizer, "model_max_length", 1024) or 1024), MAX_CONTEXT)
    resume = artifacts.latest_resume_state(job.output_dir) if job.resume else None
    hp = _resolve_hyperparameters(job, settings, lineage, records, resume)
    return Plan(
        job=job,
        method=method,
        lineage=lineage,
        tokenizer=tokenizer,
        hp=hp,
        records=records,
        valid_records=valid_records,
        train=_encode_all(records, tokenizer, hp.prompt_loss_weight, max_len, sink, "training"),
        valid=_encode_all(valid_records, tokenizer, hp.prompt_loss_weight, max_len, sink, "validation"),
        resume=resume,
    )


def _supervised(records: Sequence[Record | PreferencePair]) -> list[Record]:
    return [r for r in records if not isinstance(r, PreferencePair)]


def _setup(plan: Plan, settings: Settings, sink: EventSink, ranks: distributed.Ranks) -> Run:
    job, method, hp, resume, tokenizer = plan.job, plan.method, plan.hp, plan.resume, plan.tokenizer
    train_items, valid_items = plan.train, plan.valid
    supervised, valid_supervised = _supervised(plan.records), _supervised(plan.valid_records)
    classification = classify.label_spec(job.spec.classification, supervised, valid_supervised, tokenizer)
    device = distributed.device(ranks)
    torch.manual_seed(hp.seed)
    model = distributed.wrap(_setup_model(plan.lineage, settings, hp, resume).to(device), ranks, device)
    optimizer, scheduler = _setup_optimizer(model, hp)
    saved = artifacts.load_state(resume) if resume is not None else None
    state = _restore(saved, optimizer, scheduler, sink)
    if method == "dpo":  # the reference is the starting model: computed once, kept with the resume state
        train_items, valid_items = (
            _with_reference(_unwrap(model), items, saved, key, tokenizer.pad_token_id, device)
            for items, key in ((train_items, "reference"), (valid_items, "valid_reference"))
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
        ranks=ranks,
        calibration=estimate.Calibration(settings) if ranks.main else None,
    )


def warm_up(plan: Plan, settings: Settings, steps: int, seconds: float) -> estimate.Observation:
    """Time real optimizer steps of the run's own first batches on a throwaway model, after one untimed
    step that allocates: at least `steps` and `seconds`, at most WARM_UP_MAX_STEPS. The preflight's measure
    of this machine when it has not measured a run like this one yet."""
    setup_threads(plan.job, settings)
    lengths = [_tokens(item) for item in plan.train]
    order = epoch_batches(lengths, plan.hp.batch_size, plan.hp.seed, 0)
    batches = [[plan.train[i] for i in order[k % len(order)]] for k in range(WARM_UP_MAX_STEPS + 1)]
    with tempfile.TemporaryDirectory(prefix="tuneforge-warm-up-") as scratch:
        job = plan.job.model_copy(update={"output_dir": Path(scratch), "resume": False})
        sample = [item for batch in batches for item in batch]
        valid = plan.valid[:WARM_UP_EVAL_EXAMPLES]
        trial = dataclasses.replace(plan, job=job, train=sample, valid=valid, resume=None)
        run = _setup(trial, settings, NullSink(), distributed.Ranks())
        # the run's own items: a DPO run's carry their reference log-probabilities
        bounds = list(itertools.accumulate((len(b) for b in batches), initial=0))
        batches = [run.train[a:b] for a, b in itertools.pairwise(bounds)]
        _train_step(run, batches[0])
        _synchronize(run.device)
        start, timed, tokens = time.perf_counter(), 0, 0
        for batch in batches[1:]:
            _train_step(run, batch)
            _synchronize(run.device)
            timed, tokens = timed + 1, tokens + sum(_tokens(item) for item in batch)
            if timed >= steps and time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - start
        if run.valid:  # one validation pass, timed: its pace is not the training step's
            _timed_evaluate(run)
    return estimate.observed(tokens, timed, elapsed, "warm-up", run.state.eval_tokens, run.state.eval_seconds)


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


def _read_records(path: Path | None, param: str, method: MethodType) -> Sequence[Record | PreferencePair]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise InvalidRequest(f"The {param.replace('_', ' ')} '{path}' does not exist.", param=param)
    return read_preference_pairs(Path(path)) if method == "dpo" else read_records(Path(path))


def _encode_all(
    records: Sequence[Record | PreferencePair],
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
    records: Sequence[Record | PreferencePair],
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
        classifier=hyperparameters.looks_like_classifier(
            formats.final_completions([r for r in records if not isinstance(r, PreferencePair)])
        ),
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
        return modeling.load_checkpoint_model(lineage, settings, hp.tuning, resume)
    lora = {"r": hp.lora_r, "alpha": hp.lora_alpha, "dropout": hp.lora_dropout}
    return modeling.load_for_training(lineage, settings, hp.tuning, lora, hp.seed)


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


def _restore(saved: dict[str, Any] | None, optimizer: Any, scheduler: Any, sink: EventSink) -> RunState:
    if saved is None:
        return RunState()
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_states(saved["rng"])
    sink.emit(message(f"Resuming from step {saved['run']['step']}."))
    return RunState(**saved["run"])


def _columns(method: MethodType, has_valid: bool, spec: ClassificationSpec | None) -> list[str]:
    if method == "dpo":
        return preference.COLUMNS + (preference.VALIDATION_COLUMNS if has_valid else [])
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
    work = workload(run, _unwrap(run.model))
    n_params, trainable, tokens = work.n_parameters, work.trainable_parameters, work.trained_tokens
    known = run.calibration.lookup(calibration_key(run), work.tokens_per_step) if run.calibration else None
    cost = known or estimate.flops_observation(n_params, trainable, run.device)  # the worker revises it
    forecast = estimate.forecast(cost, work, run.device, estimate.process_rss())
    peak = forecast.peak_gpu_bytes if forecast.peak_gpu_bytes is not None else forecast.peak_cpu_bytes
    facts = RunFacts(
        n_train_examples=len(run.train),
        n_validation_examples=len(run.valid),
        n_parameters=n_params,
        trainable_parameters=trainable,
        device=str(run.device),
        data_format=run.data_format,
        estimated_seconds=forecast.seconds,
        estimated_peak_gib=round(peak / 2**30, 3),
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
    for path in artifacts.model_checkpoints(run.output_dir):
        manifest = artifacts.read_manifest(path) or {}
        metrics_ = metrics.openai_names(manifest.get("metrics") or {}, run.hp.total_steps)
        sink.emit(CheckpointEvent(step=artifacts.step_of(path), path=path.resolve(), metrics=metrics_))


_calibration_said = {
    "run": "at the pace an earlier run measured here",
    "warm-up": "at the pace a warm-up measured here",
    "flops": "from model FLOPs; revised once steps are measured",
}


def workload(run: Run | Plan, model: Any) -> estimate.Workload:
    """What the run computes and holds: its tokens from the encoded data, its sizes from the model (a real
    one, or the preflight's meta-device copy)."""
    hp = run.hp
    lengths = [_tokens(item) for item in run.train]
    per_epoch, valid_tokens = sum(lengths), sum(_tokens(item) for item in run.valid)
    steps_per_epoch = max(1, -(-len(lengths) // hp.batch_size))
    every_eval = run.job.eval_every or max(1, hp.total_steps // EVALS_PER_RUN)
    return estimate.Workload(
        n_parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        shape=modeling.shape(model),
        trained_tokens=hp.n_epochs * per_epoch,
        tokens_per_step=per_epoch / steps_per_epoch,
        validation_tokens=valid_tokens,
        evaluations=estimate.evaluations(hp.total_steps, every_eval, bool(run.valid)),
        micro_tokens=min(MICRO_BATCH_TOKENS, hp.batch_size * max(lengths, default=1)),
        held_tokens=per_epoch + valid_tokens,
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
    every_eval = run.job.eval_every or max(1, hp.total_steps // EVALS_PER_RUN)
    every_event = max(1, hp.total_steps // METRIC_EVENTS_PER_RUN)
    lengths = [_tokens(item) for item in run.train]
    run.loop_started = time.monotonic()
    while state.epoch < hp.n_epochs:
        batches = epoch_batches(lengths, hp.batch_size, hp.seed, state.epoch)
        while state.batch_index < len(batches):
            if stop_requested.is_set():  # a pause, a shutdown or a cancel: leave a state to continue from
                _save_resume_state(run)
                raise TrainingInterrupted("Training stopped by SIGTERM; resume with --resume.")
            examples = [run.train[i] for i in batches[state.batch_index]]
            row = _train_step(run, examples)
            state.batch_index += 1
            last = state.step == hp.total_steps
            evaluated = bool(run.valid) and run.ranks.main and state.step % every_eval == 0 and not last
            if evaluated:
                row.update(_timed_evaluate(run))
            _record(run, sink, row, emit=last or evaluated or state.step % every_event == 0)
            if state.step % run.checkpoint_every == 0 and state.batch_index < len(batches):
                _save_resume_state(run)
        state.epoch, state.batch_index = state.epoch + 1, 0
        if state.epoch < hp.n_epochs:  # the last epoch's checkpoint is the final model itself
            _save_model_checkpoint(run, sink)
            _save_resume_state(run)


def _train_step(run: Run, items: Sequence[TrainItem]) -> dict[str, float]:
    """One optimizer step over a batch: the method's loss, accumulated over micro-batches, then the step."""
    start = time.perf_counter()
    run.model.train()
    mine, factor = distributed.shard(items, run.ranks)
    with _autocast(run.device):
        if run.method == "dpo":
            pairs = [item for item in mine if isinstance(item, PairExample)]
            assert run.hp.beta is not None
            losses = preference.accumulate(
                run.model,
                pairs,
                run.hp.beta,
                run.tokenizer.pad_token_id,
                run.device,
                factor * len(mine) / len(items),
            )
        else:
            losses = _supervised_accumulate(run, [e for e in mine if isinstance(e, Example)], items, factor)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state = run.state
    state.step += 1
    state.elapsed_tokens += sum(_tokens(item) for item in items)
    state.elapsed_examples += len(items)
    state.train_seconds += time.perf_counter() - start
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


def _supervised_accumulate(
    run: Run, mine: Sequence[Example], step_items: Sequence[TrainItem], factor: float
) -> dict[str, float]:
    """Weighted cross-entropy over micro-batches split by a padded-token budget; dividing by the whole
    step's weight makes the accumulated gradient that of one batch."""
    total_weight = sum(sum(e.weights[1:]) for e in step_items if isinstance(e, Example)) or 1.0
    tally = Tally()
    for micro in micro_batches(mine, run.tokenizer.pad_token_id):
        batch = micro.to(run.device)
        logits = run.model(input_ids=batch.inputs, use_cache=False).logits
        losses = metrics.token_losses(logits, batch.labels)
        (metrics.weighted_loss(losses, batch.weights, total_weight) * factor).backward()
        tally.add(batch, logits, losses.detach())
    return tally.as_row("training")


def _tokens(item: TrainItem) -> int:
    return item.tokens if isinstance(item, PairExample) else len(item.ids)


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
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return
    state = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_states(),
        "run": vars(run.state).copy(),
    }
    if run.method == "dpo":
        state["reference"] = [(p.ref_chosen, p.ref_rejected) for p in run.train if isinstance(p, PairExample)]
        state["valid_reference"] = [
            (p.ref_chosen, p.ref_rejected) for p in run.valid if isinstance(p, PairExample)
        ]
    manifest = _manifest(run, _latest_metrics(run))
    artifacts.save_resume_state(_unwrap(run.model), run.tokenizer, manifest, state, run.output_dir)
    distributed.barrier(run.ranks)  # no rank runs ahead of a state it could be resumed from


def _save_model_checkpoint(run: Run, sink: EventSink) -> None:
    """An epoch's model, listed by the API and callable like the final one."""
    if not run.ranks.main:
        return
    latest = _latest_metrics(run)
    path = artifacts.save_model_checkpoint(
        _unwrap(run.model), run.tokenizer, _manifest(run, latest), run.output_dir
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
    model = _unwrap(run.model)  # rank 0 alone evaluates: no gradient sync to join
    model.eval()
    if run.method == "dpo":
        pairs = [item for item in run.valid if isinstance(item, PairExample)]
        assert run.hp.beta is not None
        return preference.evaluate(model, pairs, run.hp.beta, run.tokenizer.pad_token_id, run.device)
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
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return {}
    if run.valid and run.state.rows and run.state.rows[-1]["step"] == run.state.step:
        row = run.state.rows.pop()
        row.update(_timed_evaluate(run))
        if run.csv is not None:
            run.csv = artifacts.ResultsCsv(run.csv.path, run.csv.columns, run.state.rows)
        _record(run, sink, row, emit=True)
    final = _latest_metrics(run)
    artifacts.write_model_files(_unwrap(run.model), run.tokenizer, _manifest(run, final), run.output_dir)
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

"""The fine-tuning recipe behind `tuneforge train` and the worker: read and encode the data, resolve the
"auto" hyperparameters, set up the model (LoRA or full), train with grouped batches, evaluate, checkpoint,
and write an HF-format output directory. Every step reports through an `EventSink`.

Read `train` top to bottom; each named step below is a short function."""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneforge.data.readers import read_records
from tuneforge.data.records import Record
from tuneforge.errors import InvalidRequest, TrainingFailed
from tuneforge.settings import Settings
from tuneforge.training import artifacts, distributed, formats, hyperparameters, metrics, modeling
from tuneforge.training.batches import collate, epoch_batches, micro_batches
from tuneforge.training.events import EventSink, NullSink, message
from tuneforge.training.formats import Example
from tuneforge.training.hyperparameters import Hyperparameters, Method
from tuneforge.training.metrics import ClassificationSpec, Tally

EVALS_PER_RUN = 10  # validation rows at a regular interval, plus one at the end
METRIC_EVENTS_PER_RUN = 200  # metrics events sent to the worker; results.csv still gets every step


@dataclass
class TrainConfig:
    """The options of `tuneforge train`; None means "auto"."""

    model: str
    training_file: Path
    validation_file: Path | None = None
    output_dir: Path = Path("tuneforge-output")
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    prompt_loss_weight: float = 0.01  # OpenAI's default: prompt tokens barely count
    compute_classification_metrics: bool = False
    classification_n_classes: int | None = None
    classification_positive_class: str | None = None
    classification_betas: list[float] = field(default_factory=list)
    method: Method | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    seed: int | None = None  # None: drawn at random and recorded
    suffix: str | None = None
    checkpoint_every: int | None = None  # steps; None: settings.checkpoint_every_steps
    eval_every: int | None = None  # steps; None: about EVALS_PER_RUN times per run
    threads: int | None = None  # torch CPU threads; None: settings.train_threads, then all cores
    resume: bool = False


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    trained_tokens: int
    metrics: dict[str, float]
    hyperparameters: dict[str, Any]
    model: Any = field(default=None, repr=False)  # the trained model, still in memory (tests, benches)
    train_seconds: float = 0.0  # time in optimizer steps only (no evaluation, loading or saving)


class TrainingInterrupted(TrainingFailed):
    """SIGTERM arrived: the run stopped at a step boundary; the last checkpoint stays for --resume."""

    default_code = "interrupted"


@dataclass
class RunState:
    """Where training stands; saved with every checkpoint so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # the next batch of `epoch`
    elapsed_tokens: int = 0  # real (non-padding) tokens trained on
    elapsed_examples: int = 0
    train_seconds: float = 0.0
    rows: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Run:
    """Everything the loop needs, built by the setup steps."""

    config: TrainConfig
    hp: Hyperparameters
    lineage: modeling.Lineage
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train: list[Example]
    valid: list[Example]
    data_format: formats.DataFormat
    stop: list[str]
    classification: ClassificationSpec | None
    device: torch.device
    total_steps: int
    state: RunState
    csv: artifacts.ResultsCsv | None  # rank 0 only
    checkpoint_every: int
    ranks: distributed.Ranks


def train(config: TrainConfig, settings: Settings, sink: EventSink) -> TrainResult:
    _setup_threads(config, settings)
    ranks = distributed.setup()
    sink = sink if ranks.main else NullSink()
    try:
        with _stop_on_sigterm() as stop_requested:
            run = _setup(config, settings, sink, ranks)
            _announce(run, sink)
            _train_loop(run, sink, stop_requested)
            final = _finish(run, sink)
    finally:
        distributed.teardown(ranks)
    sink.emit(
        {
            "type": "done",
            "output_dir": str(config.output_dir.resolve()),
            "trained_tokens": run.state.elapsed_tokens,
            "metrics": final,
        }
    )
    return TrainResult(
        config.output_dir,
        run.state.step,
        run.state.elapsed_tokens,
        final,
        run.hp.as_dict(),
        _unwrap(run.model),
        run.state.train_seconds,
    )


# --- setup -------------------------------------------------------------------------------------------


def _setup(config: TrainConfig, settings: Settings, sink: EventSink, ranks: distributed.Ranks) -> Run:
    records = _read_records(config.training_file, "training_file")
    valid_records = _read_records(config.validation_file, "validation_file") if config.validation_file else []
    data_format = formats.data_format(records)
    lineage = modeling.lineage(config.model, settings)
    from tuneforge.training import base_models

    tokenizer = base_models.load_tokenizer(lineage.ref, settings)
    formats.ensure_chat_template(tokenizer)
    max_len = min(int(getattr(tokenizer, "model_max_length", 1024) or 1024), 4096)
    checkpoint = artifacts.latest_checkpoint(config.output_dir) if config.resume else None
    classifier = hyperparameters.looks_like_classifier(formats.final_completions(records))
    hp = _resolve_hyperparameters(config, settings, lineage, len(records), classifier, checkpoint)
    train_examples = _encode_all(records, tokenizer, hp.prompt_loss_weight, max_len, sink, "training")
    valid_examples = _encode_all(valid_records, tokenizer, hp.prompt_loss_weight, max_len, sink, "validation")
    classification = _classification_spec(config, records, valid_records, tokenizer)
    device = distributed.device(ranks)
    torch.manual_seed(hp.seed)
    model = distributed.wrap(_setup_model(lineage, settings, hp, checkpoint).to(device), ranks, device)
    optimizer, scheduler, total_steps = _setup_optimizer(model, hp, len(train_examples))
    state = _restore(checkpoint, optimizer, scheduler, sink)
    columns = _columns(bool(valid_examples), classification)
    csv = artifacts.ResultsCsv(config.output_dir / "results.csv", columns, state.rows) if ranks.main else None
    stop = formats.stop_sequences(records)
    every = max(1, config.checkpoint_every or settings.checkpoint_every_steps)
    return Run(
        config,
        hp,
        lineage,
        tokenizer,
        model,
        optimizer,
        scheduler,
        train_examples,
        valid_examples,
        data_format,
        stop,
        classification,
        device,
        total_steps,
        state,
        csv,
        every,
        ranks,
    )


def _setup_threads(config: TrainConfig, settings: Settings) -> None:
    threads = config.threads or settings.train_threads
    if threads:
        torch.set_num_threads(threads)


def _read_records(path: Path | None, param: str) -> list[Record]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise InvalidRequest(f"The {param.replace('_', ' ')} '{path}' does not exist.", param=param)
    return read_records(Path(path))


def _encode_all(
    records: Sequence[Record], tokenizer: Any, plw: float, max_len: int, sink: EventSink, what: str
) -> list[Example]:
    examples = [formats.encode(r, tokenizer, plw, max_len) for r in records]
    kept = [e for e in examples if len(e.ids) >= 2 and any(e.target[1:])]
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


def _resolve_hyperparameters(
    config: TrainConfig,
    settings: Settings,
    lineage: modeling.Lineage,
    n: int,
    classifier: bool,
    checkpoint: Path | None,
) -> Hyperparameters:
    if checkpoint is not None:  # a resumed run keeps the values it started with, "auto" included
        saved = artifacts.read_manifest(checkpoint)
        assert saved is not None
        return Hyperparameters(**saved["hyperparameters"])
    builtin = lineage.builtin
    method: Method = config.method or _auto_method(lineage, settings)
    batch_size = min(config.batch_size or hyperparameters.auto_batch_size(n, builtin), n)
    multiplier = config.learning_rate_multiplier or hyperparameters.auto_multiplier(batch_size)
    epochs = config.n_epochs or hyperparameters.auto_epochs(n, batch_size, builtin, classifier)
    steps = epochs * math.ceil(n / batch_size)
    return Hyperparameters(
        n_epochs=epochs,
        batch_size=batch_size,
        learning_rate_multiplier=multiplier,
        learning_rate=multiplier * hyperparameters.BASE_LEARNING_RATE[(method, builtin)],
        prompt_loss_weight=config.prompt_loss_weight,
        method=method,
        seed=config.seed if config.seed is not None else random.SystemRandom().randrange(2**31),
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        warmup_steps=min(100, max(1, steps // 20)),  # a short ramp keeps Adam's first steps sane
        weight_decay=0.0,
    )


def _auto_method(lineage: modeling.Lineage, settings: Settings) -> Method:
    if lineage.parent_manifest is not None:  # continuing a fine-tune: keep its method
        parent_method: Method = lineage.parent_manifest["method"]
        return parent_method
    builtin = lineage.builtin
    return hyperparameters.auto_method(
        builtin, 0 if builtin else modeling.count_parameters(lineage, settings)
    )


def _classification_spec(
    config: TrainConfig, records: Sequence[Record], valid: Sequence[Record], tokenizer: Any
) -> ClassificationSpec | None:
    if not config.compute_classification_metrics:
        return None
    if not valid:
        raise InvalidRequest("Classification metrics need a validation file.", param="validation_file")
    labels = formats.class_labels(records)
    positive = config.classification_positive_class
    if positive is not None and positive not in labels:
        stripped = {label.strip(): label for label in labels}
        if positive.strip() not in stripped:
            raise InvalidRequest(
                f"The positive class {positive!r} is not a completion of the training file "
                f"(labels: {labels[:10]}).",
                param="classification_positive_class",
            )
        positive = stripped[positive.strip()]
    expected = config.classification_n_classes or (2 if positive is not None else None)
    if expected is not None and len(labels) != expected:
        raise InvalidRequest(
            f"classification_n_classes is {expected} but the training file has "
            f"{len(labels)} distinct completions.",
            param="classification_n_classes",
        )
    label_ids = [
        [*tokenizer(label, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for label in labels
    ]
    return ClassificationSpec(labels, label_ids, positive, list(config.classification_betas))


def _setup_model(
    lineage: modeling.Lineage, settings: Settings, hp: Hyperparameters, checkpoint: Path | None
) -> Any:
    if checkpoint is not None:
        return modeling.load_checkpoint_model(lineage, settings, hp.method, checkpoint)
    lora = {"r": hp.lora_r, "alpha": hp.lora_alpha, "dropout": hp.lora_dropout}
    return modeling.load_for_training(lineage, settings, hp.method, lora, hp.seed)


def _setup_optimizer(
    model: Any, hp: Hyperparameters, n_examples: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, int]:
    total = hp.n_epochs * math.ceil(n_examples / hp.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=hp.learning_rate, weight_decay=hp.weight_decay, betas=(0.9, 0.99), foreach=True
    )

    def ramp_then_decay(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < hp.warmup_steps:
            return (step + 1) / hp.warmup_steps
        return max(0.0, (total - step) / max(1, total - hp.warmup_steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, ramp_then_decay), total


def _restore(checkpoint: Path | None, optimizer: Any, scheduler: Any, sink: EventSink) -> RunState:
    if checkpoint is None:
        return RunState()
    saved = artifacts.load_state(checkpoint)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_states(saved["rng"])
    sink.emit(message(f"Resuming from checkpoint at step {saved['run']['step']} ({checkpoint.name})."))
    return RunState(**saved["run"])


def _columns(has_valid: bool, spec: ClassificationSpec | None) -> list[str]:
    columns = metrics.RESULTS_COLUMNS if has_valid else metrics.RESULTS_COLUMNS[:6]
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
    """The first events: resolved hyperparameters, why, and how long (and how much memory) to expect."""
    n_params = sum(p.numel() for p in run.model.parameters())
    trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    tokens = run.hp.n_epochs * sum(len(e.ids) for e in run.train)
    data = {
        **run.hp.as_dict(),
        "total_steps": run.total_steps,
        "n_train_examples": len(run.train),
        "n_validation_examples": len(run.valid),
        "n_parameters": n_params,
        "trainable_parameters": trainable,
        "device": str(run.device),
        "data_format": run.data_format,
        "estimated_seconds": round(_estimate_seconds(n_params, trainable, tokens, run.device), 1),
    }
    sink.emit({"type": "hyperparameters", "data": data})
    explicit = {
        k
        for k in ("n_epochs", "batch_size", "learning_rate_multiplier", "method")
        if getattr(run.config, k) is not None
    }
    for line in hyperparameters.reasons(run.hp, explicit, run.lineage.builtin):
        sink.emit(message(f"Auto hyperparameter {line}."))
    estimate = (
        f"Training {n_params / 1e6:.1f}M parameters ({trainable / 1e6:.2f}M trainable, {run.hp.method}) "
    )
    estimate += f"on {run.device.type} for {run.total_steps} steps, about {tokens:,} tokens: "
    estimate += f"estimated {data['estimated_seconds'] / 60:.1f} minutes"
    if run.device.type == "cuda":
        estimate += f", about {_estimate_gib(n_params, trainable):.1f} GiB of GPU memory"
    sink.emit(message(estimate + "."))


def _estimate_seconds(n_params: int, trainable: int, tokens: int, device: torch.device) -> float:
    """Model FLOPs (6 per parameter and token; about 4 when only adapters learn) over a measured peak."""
    flops = (6 if trainable == n_params else 4) * n_params * tokens
    return flops / (0.4 * _matmul_peak(device))


def _matmul_peak(device: torch.device) -> float:
    size = 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype, generator=None)
    a @ a  # warm-up
    start, reps = time.perf_counter(), 4
    for _ in range(reps):
        a @ a
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * reps / max(1e-9, time.perf_counter() - start)


def _estimate_gib(n_params: int, trainable: int) -> float:
    # fp32 weights, plus gradient and two Adam moments per trainable weight, plus ~30% for activations
    return 1.3 * (4 * n_params + 12 * trainable) / 2**30


# --- the loop ----------------------------------------------------------------------------------------


def _train_loop(run: Run, sink: EventSink, stop_requested: threading.Event) -> None:
    hp, state = run.hp, run.state
    every_checkpoint = run.checkpoint_every
    every_eval = run.config.eval_every or max(1, run.total_steps // EVALS_PER_RUN)
    every_event = max(1, run.total_steps // METRIC_EVENTS_PER_RUN)
    lengths = [len(e.ids) for e in run.train]
    while state.epoch < hp.n_epochs:
        batches = epoch_batches(lengths, hp.batch_size, hp.seed, state.epoch)
        while state.batch_index < len(batches):
            if stop_requested.is_set():
                raise TrainingInterrupted("Training stopped by SIGTERM; resume with --resume.")
            examples = [run.train[i] for i in batches[state.batch_index]]
            row = _train_step(run, examples)
            state.batch_index += 1
            last = state.step == run.total_steps
            if run.valid and run.ranks.main and (state.step % every_eval == 0) and not last:
                row.update(_evaluate(run))
            _record(run, sink, row, emit=last or state.step % every_event == 0 or len(row) > 6)
            if state.step % every_checkpoint == 0 and state.batch_index < len(batches) and not last:
                _checkpoint(run, sink)
        state.epoch, state.batch_index = state.epoch + 1, 0
        if state.epoch < hp.n_epochs:
            _checkpoint(run, sink)


def _train_step(run: Run, examples: Sequence[Example]) -> dict[str, float]:
    """One optimizer step over a batch, split into micro-batches by a padded-token budget."""
    start = time.perf_counter()
    run.model.train()
    total_weight = sum(sum(e.weights[1:]) for e in examples) or 1.0
    mine, factor = distributed.shard(examples, run.ranks)
    tally = Tally()
    for micro in micro_batches(mine, run.tokenizer.pad_token_id):
        batch = micro.to(run.device)
        with _autocast(run.device):
            logits = run.model(input_ids=batch.inputs, use_cache=False).logits
        losses = metrics.token_losses(logits, batch.labels)
        (metrics.weighted_loss(losses, batch.weights, total_weight) * factor).backward()
        tally.add(batch, logits, losses.detach())
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state = run.state
    state.step += 1
    state.elapsed_tokens += sum(len(e.ids) for e in examples)
    state.elapsed_examples += len(examples)
    state.train_seconds += time.perf_counter() - start
    row = {
        "step": float(state.step),
        "elapsed_tokens": float(state.elapsed_tokens),
        "elapsed_examples": float(state.elapsed_examples),
        **tally.as_row("training"),
    }
    if not math.isfinite(row.get("training_loss", 0.0)):
        raise TrainingFailed(
            f"The training loss became {row['training_loss']} at step {state.step}; "
            "lower learning_rate_multiplier.",
            param="learning_rate_multiplier",
        )
    return row


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
        sink.emit({"type": "metrics", "data": row})


def _checkpoint(run: Run, sink: EventSink) -> None:
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return
    state = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_states(),
        "run": vars(run.state).copy(),
    }
    latest = _latest_metrics(run)
    path = artifacts.save_checkpoint(
        _unwrap(run.model), run.tokenizer, _manifest(run, latest), state, run.config.output_dir
    )
    distributed.barrier(run.ranks)  # no rank runs ahead of a checkpoint it could be resumed from
    sink.emit({"type": "checkpoint", "step": run.state.step, "path": str(path), "metrics": latest})


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
    tally, first_token_probs = Tally(), np.full((len(run.valid), _n_labels(run)), np.nan)
    spec = run.classification
    first_ids = [ids[0] for ids in spec.label_ids] if spec else []
    distinct = len(set(first_ids)) == len(first_ids)
    with torch.no_grad():
        for chunk in _length_chunks(run.valid):
            batch = collate([run.valid[i] for i in chunk], run.tokenizer.pad_token_id).to(run.device)
            with _autocast(run.device):
                logits = model(input_ids=batch.inputs, use_cache=False).logits
            tally.add(batch, logits, metrics.token_losses(logits, batch.labels))
            if spec and distinct:
                _first_token_probabilities(run, chunk, logits, first_ids, first_token_probs)
        row = tally.as_row("validation")
        if spec:
            probs = first_token_probs if distinct else _sequence_probabilities(run, spec)
            row.update(metrics.classification_metrics(spec, [e.completion for e in run.valid], probs))
    return row


def _n_labels(run: Run) -> int:
    return len(run.classification.labels) if run.classification else 0


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


def _first_token_probabilities(
    run: Run, chunk: list[int], logits: torch.Tensor, first_ids: list[int], out: np.ndarray
) -> None:
    """Labels that start with distinct tokens are told apart by the first completion token alone: its
    distribution, renormalised over the labels, comes free with the validation pass."""
    for row, index in enumerate(chunk):
        position = run.valid[index].prompt_len - 1
        if position < 0:
            out[index] = 1.0 / len(first_ids)
            continue
        out[index] = logits[row, position, first_ids].float().softmax(-1).cpu().numpy()


def _sequence_probabilities(run: Run, spec: ClassificationSpec) -> np.ndarray:
    """Labels sharing a first token: score each label's whole completion (with eos) after the prompt."""
    out = np.zeros((len(run.valid), len(spec.labels)))
    for index, example in enumerate(run.valid):
        prompt = example.ids[: example.prompt_len]
        candidates = [
            Example(
                prompt + ids,
                [0.0] * len(prompt) + [1.0] * len(ids),
                [False] * len(prompt) + [True] * len(ids),
                len(prompt),
                "",
            )
            for ids in spec.label_ids
        ]
        batch = collate(candidates, run.tokenizer.pad_token_id).to(run.device)
        with _autocast(run.device):
            logits = _unwrap(run.model)(input_ids=batch.inputs, use_cache=False).logits
        logprob = -(metrics.token_losses(logits, batch.labels) * batch.weights).sum(dim=1)
        out[index] = logprob.softmax(-1).cpu().numpy()
    return out


# --- the end -----------------------------------------------------------------------------------------


def _finish(run: Run, sink: EventSink) -> dict[str, float]:
    """The final validation row, then the output directory (weights, tokenizer, manifest)."""
    if not run.ranks.main:
        distributed.barrier(run.ranks)
        return {}
    if run.valid and run.state.rows and run.state.rows[-1]["step"] == run.state.step:
        row = run.state.rows.pop()
        row.update(_evaluate(run))
        if run.csv is not None:
            run.csv = artifacts.ResultsCsv(run.csv.path, run.csv.columns, run.state.rows)
        _record(run, sink, row, emit=True)
    final = _latest_metrics(run)
    artifacts.write_model_files(
        _unwrap(run.model), run.tokenizer, _manifest(run, final), run.config.output_dir
    )
    distributed.barrier(run.ranks)
    seconds = max(1e-9, run.state.train_seconds)
    sink.emit(
        message(
            f"Trained {run.state.elapsed_tokens:,} tokens in {seconds:.1f} s "
            f"({run.state.elapsed_tokens / seconds:,.0f} real tokens/s)."
        )
    )
    return final


def _manifest(run: Run, final: dict[str, float]) -> dict[str, Any]:
    spec = run.classification
    return {
        "format_version": artifacts.FORMAT_VERSION,
        "base_model": run.lineage.base,
        "builtin_base": run.lineage.builtin,
        "parent_model": run.config.model if run.lineage.parent_manifest else None,
        "method": run.hp.method,
        "hyperparameters": run.hp.as_dict(),
        "data_format": run.data_format,
        "eos_token": run.tokenizer.eos_token,
        "stop": run.stop,
        "classification": {"labels": spec.labels, "positive_class": spec.positive_class} if spec else None,
        "metrics": final,
        "trained_tokens": run.state.elapsed_tokens,
        "step": run.state.step,
        "suffix": run.config.suffix,
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

"""What a run will cost before it starts. Time: seconds per trained token as measured on this machine (a
few real steps at the run's batch shape, or a finished run's own average), cached in the data dir per
model, tuning and device; FLOPs over a measured matmul only when nothing was measured. Memory: weights,
gradients, optimizer moments, activations of the largest forward pass, and the process itself, counted
by one function (`peak_memory`) for the preflight's answer and the training child's announcement alike."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tuneforge.ids import now
from tuneforge.settings import Settings
from tuneforge.spec import CostEstimate

MODEL_FLOPS_UTILISATION = 0.4  # share of the matmul peak a training step reaches (small models: less)
CALIBRATION_FILE = "calibration.json"
NEAR = 1.5  # an observation at a step this many times larger or smaller than the run's still stands for it
SAME_SHAPE = 1.25  # a new observation this close to an older one of its source replaces it
KEEP_PER_KEY = 24  # observations kept per (model, tuning, device): many shapes, a small file
FORWARD_SHARE = 1 / 3  # an evaluation's forward pass costs about a third of a training step's work
Source = Literal["run", "warm-up", "flops"]


@dataclass(frozen=True)
class Observation:
    """Measured optimizer steps of `tokens_per_step` real tokens each, and what one token cost."""

    tokens_per_step: float
    seconds_per_token: float
    source: Source
    measured_at: int = 0
    eval_seconds_per_token: float | None = None  # a validation pass's pace, where one was timed


def calibration_key(model: str, tuning: str, device: torch.device) -> str:
    """CPU speed depends on the threads a trainer gets, so they are part of the device."""
    where = f"cpu/{torch.get_num_threads()}t" if device.type == "cpu" else torch.cuda.get_device_name(device)
    return f"{model}|{tuning}|{where}"


class Calibration:
    """The cache of measured step costs in the data dir (`calibration.json`). Several processes write it;
    each write replaces the file whole, so a race can lose one observation, never corrupt the file."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / CALIBRATION_FILE

    def lookup(self, key: str, tokens_per_step: float) -> Observation | None:
        """The observation nearest the run's step size, within NEAR; a finished run beats a warm-up."""
        near = [o for o in self._read().get(key, []) if _distance(o.tokens_per_step, tokens_per_step) <= NEAR]
        near.sort(key=lambda o: (o.source != "run", _distance(o.tokens_per_step, tokens_per_step)))
        if not near or near[0].eval_seconds_per_token is not None:
            return near[0] if near else None
        timed = [o.eval_seconds_per_token for o in near if o.eval_seconds_per_token is not None]
        return dataclasses.replace(near[0], eval_seconds_per_token=timed[0] if timed else None)

    def record(self, key: str, observation: Observation) -> None:
        table = self._read()
        kept = [
            o
            for o in table.get(key, [])
            if o.source != observation.source
            or _distance(o.tokens_per_step, observation.tokens_per_step) > SAME_SHAPE
        ]
        table[key] = [*kept, observation][-KEEP_PER_KEY:]
        self._write(table)

    def _read(self) -> dict[str, list[Observation]]:
        try:
            raw = json.loads(self.path.read_text())
            return {key: [Observation(**o) for o in rows] for key, rows in raw.items()}
        except (OSError, ValueError, TypeError):  # none yet, or written by another version: start afresh
            return {}

    def _write(self, table: dict[str, list[Observation]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as handle:
            json.dump({key: [asdict(o) for o in rows] for key, rows in table.items()}, handle)
        os.replace(handle.name, self.path)


def _distance(a: float, b: float) -> float:
    return max(a, b) / max(1e-9, min(a, b))


def observed(
    tokens: int, steps: int, seconds: float, source: Source, eval_tokens: int = 0, eval_seconds: float = 0.0
) -> Observation:
    return Observation(
        tokens_per_step=tokens / max(1, steps),
        seconds_per_token=seconds / max(1, tokens),
        source=source,
        measured_at=now(),
        eval_seconds_per_token=eval_seconds / eval_tokens if eval_tokens else None,
    )


def flops_observation(n_params: int, trainable: int, device: torch.device) -> Observation:
    """Model FLOPs (6 per parameter and token; about 4 when only adapters learn) over a measured peak: the
    guess used only where this machine has measured nothing for the model yet."""
    flops_per_token = (6 if trainable == n_params else 4) * n_params
    return Observation(0.0, flops_per_token / (MODEL_FLOPS_UTILISATION * matmul_peak(device)), "flops")


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of a 1024² matmul here, in the dtype training uses on this device."""
    size = 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    a @ a  # warm-up
    start, reps = time.perf_counter(), 4
    for _ in range(reps):
        a @ a
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * reps / max(1e-9, time.perf_counter() - start)


def training_seconds(
    cost: Observation, trained_tokens: int, validation_tokens: int, evaluations: int
) -> float:
    """The loop's time: every trained token at the measured cost, plus the validation passes at theirs
    (where none was timed: a third of a training token's, the forward pass alone)."""
    eval_pace = cost.eval_seconds_per_token or FORWARD_SHARE * cost.seconds_per_token
    return cost.seconds_per_token * trained_tokens + eval_pace * validation_tokens * evaluations


def evaluations(total_steps: int, every: int, has_validation: bool) -> int:
    """How many validation passes the loop makes: every `every` steps before the last, and one at the end."""
    return math.ceil(total_steps / every) if has_validation else 0


@dataclass(frozen=True)
class Shape:
    """The model's sizes that activations scale with."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Shape:
        """Read from a model config of any family (Llama's names, or GPT-2's)."""
        hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
        intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
        layers = getattr(config, "num_hidden_layers", None) or config.n_layer
        return cls(
            layers=int(layers), hidden=hidden, intermediate=int(intermediate or 4 * hidden),
            vocab=int(config.vocab_size),
        )  # fmt: skip


@dataclass(frozen=True)
class Workload:
    """What a run will compute and hold, counted from its plan and its model."""

    n_parameters: int
    trainable_parameters: int
    shape: Shape
    trained_tokens: int  # every epoch's real tokens
    tokens_per_step: float
    validation_tokens: int
    evaluations: int
    micro_tokens: int  # the largest forward pass, padding included
    held_tokens: int  # encoded tokens the trainer keeps in memory
    checkpointing: bool = False  # gradient checkpointing: layers recomputed in the backward pass


def forecast(cost: Observation, work: Workload, device: torch.device, baseline: int) -> CostEstimate:
    """Time at the measured pace, memory by `peak_memory`: what the preflight answers, the run announces."""
    cpu_bytes, gpu_bytes = peak_memory(work, device, baseline)
    return CostEstimate(
        seconds=round(
            training_seconds(cost, work.trained_tokens, work.validation_tokens, work.evaluations), 1
        ),
        seconds_per_token=cost.seconds_per_token,
        calibration=cost.source,
        device=str(device),
        peak_cpu_bytes=cpu_bytes,
        peak_gpu_bytes=gpu_bytes,
    )


# --- memory ------------------------------------------------------------------------------------------

BYTES_PER_HELD_TOKEN = 64  # the encoded data the trainer keeps: ids, weights and targets as Python lists


def process_rss() -> int:
    """This process's resident memory now (Linux); 0 where /proc is missing."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return 0


# What a CPU training process holds before it loads a model (python, torch, transformers, peft, tokenizers):
# measured 0.46 GiB (bench/memory_check.py); the fallback where /proc cannot say. A GPU's allocator counts
# none of it.
CPU_RUNTIME_GIB = 0.46
# Float32 tensors a decoder layer keeps per token for its backward pass: about ten of the hidden size (norm
# outputs, q/k/v, attention output, residuals) and four of the MLP's width (gate, up, activation, product).
HIDDEN_COPIES, MLP_COPIES = 10, 4
# Over the vocabulary, per token: the logits, their float32 log-softmax and the gradient of each. At
# Qwen's 151,936 tokens this is the largest activation by far.
LOGIT_COPIES = 4


def state_bytes(n_params: int, trainable: int) -> int:
    """fp32 weights; per trainable weight its gradient, two Adam moments and the optimizer's temporary
    copy."""
    return 4 * n_params + 16 * trainable


def activation_bytes(shape: Shape, tokens: int, dtype_bytes: int, checkpointing: bool) -> int:
    """Saved for the backward pass of one forward pass of `tokens` padded tokens: every layer's working set,
    or under gradient checkpointing one hidden state per layer plus one layer's working set (recomputed
    layer by layer); and the logits over the vocabulary, float32 under autocast too (the loss upcasts)."""
    layer = tokens * (HIDDEN_COPIES * shape.hidden + MLP_COPIES * shape.intermediate) * dtype_bytes
    kept = (
        shape.layers * tokens * shape.hidden * dtype_bytes + layer if checkpointing else shape.layers * layer
    )
    return kept + LOGIT_COPIES * tokens * shape.vocab * 4


def peak_memory(work: Workload, device: torch.device, baseline: int) -> tuple[int, int | None]:
    """(peak resident bytes of the trainer, peak GPU bytes or None off CUDA). `baseline` is the process
    before it loads a model. On a CPU everything is host memory: the process, the encoded data, the
    training state and the largest micro-batch's activations (float32). On CUDA the state and the
    activations (bf16 under autocast) are on the GPU, and host memory holds the process, the data and the
    weights once, on their way to the GPU."""
    data = BYTES_PER_HELD_TOKEN * work.held_tokens
    state = state_bytes(work.n_parameters, work.trainable_parameters)
    if device.type == "cuda":
        gpu = state + activation_bytes(work.shape, work.micro_tokens, 2, work.checkpointing)
        return baseline + data + 4 * work.n_parameters, gpu
    activations = activation_bytes(work.shape, work.micro_tokens, 4, work.checkpointing)
    return baseline + data + state + activations, None


def runtime_bytes() -> int:
    """This process's resident memory now, where it stands for a trainer's before any model is loaded."""
    return process_rss() or round(CPU_RUNTIME_GIB * 2**30)

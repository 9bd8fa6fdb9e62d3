"""What a run will cost before it starts: time from model FLOPs over this machine's measured matmul speed,
and peak memory from the weights, gradients, optimizer moments and the activations of the largest
micro-batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

MODEL_FLOPS_UTILISATION = 0.4  # share of the matmul peak a training step reaches (small models: less)


def seconds(n_params: int, trainable: int, tokens: int, device: torch.device) -> float:
    """Model FLOPs (6 per parameter and token; about 4 when only adapters learn) over a measured peak."""
    flops = (6 if trainable == n_params else 4) * n_params * tokens
    return flops / (MODEL_FLOPS_UTILISATION * matmul_peak(device))


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


@dataclass(frozen=True)
class Shape:
    """What activation memory grows with, read from a model config of any family."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Shape:
        hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
        intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
        layers = getattr(config, "num_hidden_layers", None) or config.n_layer
        return cls(hidden, int(intermediate or 4 * hidden), int(layers), int(config.vocab_size))


# What a CPU training process holds before it loads a model (python, torch, transformers, peft, tokenizers):
# measured 0.46 GiB (bench/memory_check.py). A GPU's allocator counts none of it.
CPU_RUNTIME_GIB = 0.46
# Float32 tensors a decoder layer keeps per token for its backward pass: about ten of the hidden size (norm
# outputs, q/k/v, attention output, residuals) and four of the MLP's width (gate, up, activation, product).
HIDDEN_COPIES, MLP_COPIES = 10, 4
# Over the vocabulary, per token: the logits, their float32 log-softmax and the gradient of each. At
# Qwen's 151,936 tokens this is the largest activation by far.
LOGIT_COPIES = 4


def peak_gib(
    n_params: int,
    trainable: int,
    *,
    shape: Shape | None = None,
    tokens: int = 0,
    checkpointing: bool = False,
    runtime_gib: float = 0.0,
) -> float:
    """Peak memory of a training step: fp32 weights; per trainable weight its gradient, two Adam moments and
    the optimizer's temporary copy; the activations of the largest micro-batch (`tokens` padded tokens),
    where gradient checkpointing keeps one hidden state per layer plus one layer's working set; plus
    `runtime_gib` (CPU_RUNTIME_GIB on a CPU). Without `shape` and `tokens`: weights and optimizer state
    plus 30% for activations."""
    static = 4 * n_params + 16 * trainable
    if shape is None or tokens <= 0:
        return 1.3 * (4 * n_params + 12 * trainable) / 2**30 + runtime_gib
    layer = tokens * (HIDDEN_COPIES * shape.hidden + MLP_COPIES * shape.intermediate) * 4
    kept = shape.layers * tokens * shape.hidden * 4 + layer if checkpointing else shape.layers * layer
    logits = LOGIT_COPIES * tokens * shape.vocab * 4
    return (static + kept + logits) / 2**30 + runtime_gib

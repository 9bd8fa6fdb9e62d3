"""What a run will cost before it starts: time from model FLOPs over this machine's measured matmul speed,
and peak memory from the weights, gradients and optimizer moments."""

from __future__ import annotations

import time

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


def peak_gib(n_params: int, trainable: int) -> float:
    # fp32 weights, plus gradient and two Adam moments per trainable weight, plus ~30% for activations
    return 1.3 * (4 * n_params + 12 * trainable) / 2**30

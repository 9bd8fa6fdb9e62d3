"""Drawing the next token from logits: the one function both `/v1/completions` (inference/sampling.py,
a row at a time with each sequence's own generator) and reinforcement training (training/reinforcement.py,
a whole batch at once) call, so that what a reinforcement job trains on is what the server samples."""

from __future__ import annotations

import torch


def draw(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """A token id drawn for each row of `logits` (..., vocab) at `temperature` (> 0) within the nucleus
    `top_p`; the result has the shape of `logits` without its last axis."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs = nucleus(probs, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
    sorted_probs[outside] = 0.0
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)

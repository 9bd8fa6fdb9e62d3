"""A decode batch: the running sequences of one base model (any mix of its adapters) sharing one KV cache,
left-padded to a common length.

Each decode step feeds every sequence's last token in one forward pass. The padded cache is rebuilt only
when membership changes (sequences join after their prefill, or leave when finished), so a steady batch
costs exactly one forward per step. Padding is masked out and positions are per sequence, so each row
computes what it would alone (up to float rounding).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence as Seq
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from tuneforge.inference.sequence import Sequence

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape (batch, heads, len, dim)


@functools.cache
def _forward_params(model_type: Any) -> frozenset[str]:
    return frozenset(inspect.signature(model_type.forward).parameters)


def forward_kwargs(model: Any) -> frozenset[str]:
    """The keyword names the underlying transformers model takes (the cache is `cache` in newer releases,
    `past_key_values` before)."""
    return _forward_params(type(model))  # type: ignore[arg-type]


def run_forward(seqs: Seq[Sequence], cache: Any, **inputs: Any) -> tuple[torch.Tensor, Any]:
    """One forward pass over rows that share a base; row i applies `seqs[i]`'s adapter (if any). Returns
    (logits, cache)."""
    base = seqs[0].model.base
    names = forward_kwargs(base.model)
    if cache is not None:
        inputs["cache" if "cache" in names else "past_key_values"] = cache
    if "logits_to_keep" not in names:
        inputs.pop("logits_to_keep", None)
    out = base.forward([s.model.slot for s in seqs], use_cache=True, **inputs)
    new_cache = out["cache"] if "cache" in out else out["past_key_values"]
    return out.logits, new_cache


def kv_of(cache: Any) -> KV:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def make_cache(kv: KV) -> DynamicCache:
    return DynamicCache(kv)


class DecodeBatch:
    """Rows of one base model; each row may run a different adapter of it."""

    def __init__(self, seqs: list[Sequence], kv: KV, mask: torch.Tensor) -> None:
        self.seqs = seqs
        self.mask = mask  # (batch, cache length): 1 for real tokens, 0 for left padding
        self._kv: KV | None = kv
        self._cache: Any = None

    def __len__(self) -> int:
        return len(self.seqs)

    def live_rows(self) -> list[int]:
        """Rows whose sequence still generates; the others wait for the next re-pack (`keep`)."""
        return [i for i, s in enumerate(self.seqs) if not s.finished]

    def step(self) -> torch.Tensor:
        """Feed each sequence's last token in one forward pass; return next-token logits (batch, vocab)."""
        device = self.mask.device
        # A finished row (kept until the next re-pack) is fed token 0; its logits are never read.
        tokens = torch.tensor([[0 if s.finished else s.output_ids[-1]] for s in self.seqs], device=device)
        positions = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        if self._cache is None:
            self._cache = make_cache(self._kv or [])
            self._kv = None
        logits, self._cache = run_forward(
            self.seqs, self._cache, input_ids=tokens, attention_mask=self.mask, position_ids=positions
        )
        return logits[:, -1, :]

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows`, dropping the padding columns no remaining row needs."""
        if rows == list(range(len(self.seqs))):
            return
        if not rows:
            self.seqs, self._kv, self._cache = [], None, None
            return
        kv = self._tensors()
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int(mask.any(0).int().argmax())
        self.mask = mask[:, start:]
        self._kv = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:]) for k, v in kv
        ]
        self._cache = None
        self.seqs = [self.seqs[i] for i in rows]

    def merge(self, other: DecodeBatch) -> None:
        """Append `other`'s rows, left-padding whichever side is shorter."""
        mine, theirs = self._tensors(), other._tensors()
        length = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, length), _left_pad(other.mask, length)], dim=0)
        self._kv = [
            (
                torch.cat([_left_pad(k1, length), _left_pad(k2, length)], dim=0),
                torch.cat([_left_pad(v1, length), _left_pad(v2, length)], dim=0),
            )
            for (k1, v1), (k2, v2) in zip(mine, theirs, strict=True)
        ]
        self._cache = None
        self.seqs = self.seqs + other.seqs

    def _tensors(self) -> KV:
        return self._kv if self._kv is not None else kv_of(self._cache)


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Pad the sequence axis (1 for masks, 2 for keys/values) on the left with zeros up to `length`."""
    axis = 1 if tensor.dim() == 2 else 2
    missing = length - tensor.shape[axis]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - axis) + [missing, 0]
    return F.pad(tensor, pad)


def prefill_inputs(seqs: Seq[Sequence], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-padded input ids, attention mask and per-row positions for a batch of prompts."""
    length = max(len(s.prompt_ids) for s in seqs)
    ids = [[pad_id] * (length - len(s.prompt_ids)) + s.prompt_ids for s in seqs]
    mask = [[0] * (length - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in seqs]
    mask_t = torch.tensor(mask, device=device)
    positions = (mask_t.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": mask_t,
        "position_ids": positions,
    }

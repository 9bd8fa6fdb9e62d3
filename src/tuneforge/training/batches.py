"""Batches that waste almost no compute on padding: examples are grouped by length within a shuffled
window, and padded on the right only, so causal attention needs no mask (a padded row's real tokens never
see its pad) and the pad positions carry zero loss weight. Grouping beat packing with a block-diagonal
mask on CPU attention (see bench/train_vs_trl.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tuneforge.training.formats import Example

GROUP_WINDOW = 64  # batches per sorting window: enough to group lengths, small enough to stay random
MICRO_BATCH_TOKENS = 8192  # padded tokens per forward pass; larger batches accumulate gradients


@dataclass
class Batch:
    inputs: torch.Tensor  # [B, T] token ids fed to the model
    labels: torch.Tensor  # [B, T] the next token at each position
    weights: torch.Tensor  # [B, T] loss weight of predicting each label (0 on padding)
    target: torch.Tensor  # [B, T] bool: label is a completion token (accuracy is measured here)
    real_tokens: int  # non-padding tokens, the ones that count for tokens/s

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        moved = [
            t.to(device, non_blocking=True) for t in (self.inputs, self.labels, self.weights, self.target)
        ]
        return Batch(moved[0], moved[1], moved[2], moved[3], self.real_tokens)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch, a pure function of (seed, epoch): resuming mid-epoch rebuilds them."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * GROUP_WINDOW
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> Batch:
    width = max(len(e.ids) for e in examples) - 1
    inputs = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), pad_id, dtype=torch.long)
    weights = torch.zeros((len(examples), width))
    target = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        n = len(example.ids) - 1
        inputs[row, :n] = torch.tensor(example.ids[:-1])
        labels[row, :n] = torch.tensor(example.ids[1:])
        weights[row, :n] = torch.tensor(example.weights[1:])
        target[row, :n] = torch.tensor(example.target[1:])
    return Batch(inputs, labels, weights, target, real_tokens=sum(len(e.ids) for e in examples))


def micro_batches(examples: Sequence[Example], pad_id: int, budget: int = MICRO_BATCH_TOKENS) -> list[Batch]:
    """Split one optimizer step's examples into forward passes of at most `budget` padded tokens."""
    ordered = sorted(examples, key=lambda e: len(e.ids))
    groups: list[list[Example]] = [[]]
    for example in ordered:
        if groups[-1] and len(example.ids) * (len(groups[-1]) + 1) > budget:
            groups.append([])
        groups[-1].append(example)
    return [collate(group, pad_id) for group in groups]

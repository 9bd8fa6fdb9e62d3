"""Preference fine-tuning (DPO, the sigmoid loss of Rafailov et al., 2023): for each pair, raise the
policy's log-probability of the preferred output relative to the reference's, and lower the other's.

The reference is the starting model, frozen. Its log-probabilities are computed once, before the first
step, by the same network the run then trains (for LoRA, the adapters start as the identity): no second
copy in memory, and one forward pass per pair instead of one per pair and epoch (TRL calls this
`precompute_ref_log_probs`). Only the assistant outputs are scored."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tuneforge.data.records import Chat, PreferencePair
from tuneforge.training import distributed, formats, metrics
from tuneforge.training.batches import MICRO_BATCH_TOKENS, collate
from tuneforge.training.formats import Example

COLUMNS = [
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_reward_accuracy",
    "training_reward_margin",
    "training_chosen_reward",
    "training_rejected_reward",
]
VALIDATION_COLUMNS = [name.replace("training_", "validation_") for name in COLUMNS[3:]]


@dataclass(frozen=True)
class PairExample:
    """A preference pair as token ids, with the reference model's log-probabilities of both outputs."""

    chosen: Example
    rejected: Example
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0

    @property
    def tokens(self) -> int:
        return len(self.chosen.ids) + len(self.rejected.ids)


def encode_pairs(pairs: Sequence[PreferencePair], tokenizer: Any, max_len: int) -> list[PairExample]:
    """The input conversation (its own assistant turns not learnt) followed by each output."""
    encoded = []
    for pair in pairs:
        context = tuple(
            dataclasses.replace(m, weight=0.0) if m.role == "assistant" else m for m in pair.messages
        )
        chosen = formats.encode(Chat(context + pair.preferred), tokenizer, 0.0, max_len)
        rejected = formats.encode(Chat(context + pair.non_preferred), tokenizer, 0.0, max_len)
        encoded.append(PairExample(chosen, rejected))
    return encoded


def with_reference(
    model: Any, pairs: list[PairExample], pad_id: int, device: torch.device
) -> list[PairExample]:
    """The pairs with the (frozen, starting) model's log-probabilities filled in."""
    model.eval()
    out: list[PairExample] = []
    with torch.no_grad():
        for chunk in _chunks(pairs):
            logps = sequence_logps(model, chunk, pad_id, device).tolist()
            n = len(chunk)
            out += [
                dataclasses.replace(p, ref_chosen=logps[i], ref_rejected=logps[n + i])
                for i, p in enumerate(chunk)
            ]
    return out


def sequence_logps(
    model: Any, pairs: Sequence[PairExample], pad_id: int, device: torch.device
) -> torch.Tensor:
    """Summed log-probability of each output's tokens: the chosen ones first, then the rejected ones."""
    examples = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    batch = collate(examples, pad_id).to(device)
    logits = model(input_ids=batch.inputs, use_cache=False).logits
    token_logps = -metrics.token_losses(logits, batch.labels)
    return (token_logps * batch.target).sum(dim=1)


def loss_and_rewards(
    logps: torch.Tensor, pairs: Sequence[PairExample], beta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses and the implicit rewards of both outputs."""
    n = len(pairs)
    ref = torch.tensor([p.ref_chosen for p in pairs] + [p.ref_rejected for p in pairs], device=device)
    rewards = beta * (logps - ref)
    chosen, rejected = rewards[:n], rewards[n:]
    return -F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach()


class RewardTally:
    """Sums over pairs, turned into the logged metrics."""

    def __init__(self) -> None:
        self.loss = self.right = self.margin = self.chosen = self.rejected = 0.0
        self.pairs = 0

    def add(self, losses: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        self.loss += float(losses.detach().sum())
        self.right += float((chosen > rejected).float().sum())
        self.margin += float((chosen - rejected).sum())
        self.chosen += float(chosen.sum())
        self.rejected += float(rejected.sum())
        self.pairs += len(chosen)

    def as_row(self, prefix: str) -> dict[str, float]:
        if not self.pairs:
            return {}
        n = self.pairs
        return {
            f"{prefix}_loss": self.loss / n,
            f"{prefix}_reward_accuracy": self.right / n,
            f"{prefix}_reward_margin": self.margin / n,
            f"{prefix}_chosen_reward": self.chosen / n,
            f"{prefix}_rejected_reward": self.rejected / n,
        }


def accumulate(
    model: Any,
    pairs: Sequence[PairExample],
    beta: float,
    pad_id: int,
    device: torch.device,
    factor: float,
    ranks: distributed.Ranks,
) -> RewardTally:
    """Forward and backward over one step's pairs in token-bounded chunks; the gradient is that of the
    mean loss over all of them (each chunk's sum is divided by the step's pair count). The chunks run in
    step with the other ranks' (`distributed.lockstep`); a zero-weight pass is left out of the tally."""
    tally = RewardTally()
    for chunk, weight in distributed.lockstep(list(_chunks(pairs)), model, ranks):
        losses, chosen, rejected = loss_and_rewards(
            sequence_logps(model, chunk, pad_id, device), chunk, beta, device
        )
        (losses.sum() / len(pairs) * factor * weight).backward()
        if factor * weight:
            tally.add(losses, chosen, rejected)
    return tally


def evaluate(
    model: Any, pairs: Sequence[PairExample], beta: float, pad_id: int, device: torch.device
) -> dict[str, float]:
    model.eval()
    tally = RewardTally()
    with torch.no_grad():
        for chunk in _chunks(pairs):
            tally.add(*loss_and_rewards(sequence_logps(model, chunk, pad_id, device), chunk, beta, device))
    return tally.as_row("validation")


def _chunks(pairs: Sequence[PairExample], budget: int = MICRO_BATCH_TOKENS) -> Iterator[list[PairExample]]:
    """Pairs in order, grouped so that each forward pass pads to at most `budget` tokens."""
    chunk: list[PairExample] = []
    width = 0
    for pair in pairs:
        longest = max(width, len(pair.chosen.ids), len(pair.rejected.ids))
        if chunk and longest * 2 * (len(chunk) + 1) > budget:
            yield chunk
            chunk, longest = [], max(len(pair.chosen.ids), len(pair.rejected.ids))
        chunk.append(pair)
        width = longest
    if chunk:
        yield chunk

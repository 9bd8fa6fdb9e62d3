"""Preference fine-tuning (DPO, the sigmoid loss of Rafailov et al., 2023): for each pair, raise the
policy's log-probability of the preferred output relative to the reference's, and lower the other's.

The reference is the starting model, frozen. Its log-probabilities are computed once, before the first
step, by the same network the run then trains (for LoRA, the adapters start as the identity): no second
copy in memory, and one forward pass per pair instead of one per pair and epoch (TRL calls this
`precompute_ref_log_probs`). Only the assistant outputs are scored. Both outputs of a pair are scored in
one row that computes their shared prompt once (`pack_pairs`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tuneforge.data.records import Chat, PreferencePair
from tuneforge.training import distributed, formats
from tuneforge.training.batches import MICRO_BATCH_TOKENS
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
    batch = pack_pairs(pairs, pad_id).to(device)
    logits = model(
        input_ids=batch.inputs,
        position_ids=batch.positions,
        attention_mask=batch.additive_mask(_dtype(model)),
        use_cache=False,
    ).logits
    picked = logits.reshape(-1, logits.shape[-1])[batch.sources]
    token_logps = -F.cross_entropy(picked.float(), batch.labels, reduction="none")
    return torch.zeros(2 * len(pairs), device=device).index_add(0, batch.owners, token_logps)


@dataclass
class PackedPairs:
    """Each pair as one row: the tokens both outputs start with (the prompt, at least), the rest of the
    preferred output, then the rest of the other one, which sees only the shared part and continues its
    positions. The hidden states are those of two separate rows, but the prompt is computed once, not
    twice, and chosen and rejected share one forward pass. Rows are padded on the right."""

    inputs: torch.Tensor  # [B, T] token ids
    positions: torch.Tensor  # [B, T] each token's position in its own output's sequence
    attend: torch.Tensor  # [B, 1, T, T] bool: query position may attend to key position
    sources: torch.Tensor  # [N] flat index (row * T + column) of the logits that score each token
    labels: torch.Tensor  # [N] the scored token
    owners: torch.Tensor  # [N] the output it belongs to: pair i's chosen is i, its rejected len(pairs) + i

    def to(self, device: torch.device) -> PackedPairs:
        if device.type == "cpu":
            return self
        fields = (getattr(self, f.name) for f in dataclasses.fields(self))  # astuple would deep-copy
        return PackedPairs(*(t.to(device, non_blocking=True) for t in fields))

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """The 4D mask as transformers passes it, unchanged, to SDPA and eager attention alike."""
        mask = torch.zeros(self.attend.shape, dtype=dtype, device=self.attend.device)
        return mask.masked_fill_(~self.attend, torch.finfo(dtype).min)


def pack_pairs(pairs: Sequence[PairExample], pad_id: int) -> PackedPairs:
    n, width = len(pairs), max(packed_length(p) for p in pairs)
    inputs = torch.full((n, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    shared, chosen_end = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    sources: list[int] = []
    labels: list[int] = []
    owners: list[int] = []
    for row, pair in enumerate(pairs):
        chosen, rejected = pair.chosen.ids, pair.rejected.ids
        s = _shared_prefix(chosen, rejected)
        inputs[row, : packed_length(pair)] = torch.tensor(chosen + rejected[s:])
        positions[row, : packed_length(pair)] = torch.tensor([*range(len(chosen)), *range(s, len(rejected))])
        shared[row], chosen_end[row] = s, len(chosen)
        for owner, example, offset in ((row, pair.chosen, 0), (n + row, pair.rejected, len(chosen) - s)):
            for j in range(1, len(example.ids)):  # token j is scored by the logits at position j - 1
                if example.target[j]:
                    column = j - 1 if j - 1 < s else j - 1 + offset
                    sources.append(row * width + column)
                    labels.append(example.ids[j])
                    owners.append(owner)
    return PackedPairs(
        inputs,
        positions,
        _attend(width, shared, chosen_end),
        torch.tensor(sources),
        torch.tensor(labels),
        torch.tensor(owners),
    )


def packed_length(pair: PairExample) -> int:
    return len(pair.chosen.ids) + len(pair.rejected.ids) - _shared_prefix(pair.chosen.ids, pair.rejected.ids)


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _attend(width: int, shared: torch.Tensor, chosen_end: torch.Tensor) -> torch.Tensor:
    """Causal, except that what follows the chosen output (the rejected one, then padding) does not see
    the chosen output's own tokens."""
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]
    chosen_own = (index >= shared[:, None]) & (index < chosen_end[:, None])  # [B, T] keys
    after_chosen = index >= chosen_end[:, None]  # [B, T] queries
    return (causal & ~(after_chosen[:, :, None] & chosen_own[:, None, :]))[:, None]


def _dtype(model: Any) -> torch.dtype:
    return next(model.parameters()).dtype


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
        longest = max(width, packed_length(pair))
        if chunk and longest * (len(chunk) + 1) > budget:
            yield chunk
            chunk, longest = [], packed_length(pair)
        chunk.append(pair)
        width = longest
    if chunk:
        yield chunk

"""Choosing the next token for a batch of sequences, and the logprobs reported with it.

Reported logprobs are the model's own distribution (a log-softmax of the raw logits), as OpenAI reports
them; temperature, top_p, penalties and logit_bias shape only the choice. Each sampled sequence draws from
its own seeded generator, so its tokens do not depend on which other sequences share its batch.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence as Seq

import torch

from tuneforge.inference.sequence import Sequence, TopLogprobs
from tuneforge.training.sampling import draw


def seed_generator(seq: Sequence, device: torch.device) -> None:
    """Give a sampled sequence its generator: from the request's seed and the choice index when a seed is
    set (equal seeds give equal results), else from fresh entropy."""
    if seq.params.greedy:
        return
    if seq.params.seed is None:
        seed = secrets.randbits(63)
    else:
        digest = hashlib.sha256(f"{seq.params.seed}:{seq.index}".encode()).digest()
        seed = int.from_bytes(digest[:8], "little") % (2**63)
    seq.generator = torch.Generator(device=device).manual_seed(seed)


def choose(logits: torch.Tensor, seqs: Seq[Sequence]) -> list[tuple[int, float, TopLogprobs]]:
    """For each row of `logits` (batch, vocab): the chosen token, its logprob and the top alternatives."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if all(s.params.greedy and s.params.plain for s in seqs):
        tokens = logits.argmax(dim=-1)
    else:
        tokens = torch.tensor([_pick(logits[i], s) for i, s in enumerate(seqs)], device=logits.device)
    chosen = logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
    tops = top_alternatives(logprobs, [s.params.top_logprobs for s in seqs])
    return list(zip(tokens.tolist(), chosen, tops, strict=True))


def top_alternatives(logprobs: torch.Tensor, counts: list[int]) -> list[TopLogprobs]:
    """The `counts[i]` most likely (token, logprob) pairs of each row."""
    k = max(counts, default=0)
    if k == 0:
        return [[] for _ in counts]
    values, indices = logprobs.topk(k, dim=-1)
    pairs = zip(indices.tolist(), values.tolist(), strict=True)
    return [list(zip(ids[:n], vals[:n], strict=True)) for (ids, vals), n in zip(pairs, counts, strict=True)]


def _pick(row: torch.Tensor, seq: Sequence) -> int:
    params = seq.params
    row = row.float()
    if not params.plain:
        row = _shaped(row, seq)
    if params.greedy:
        return int(row.argmax())
    return int(draw(row, params.temperature, params.top_p, seq.generator))


def _shaped(row: torch.Tensor, seq: Sequence) -> torch.Tensor:
    """Apply logit_bias and OpenAI's presence/frequency penalties (over the tokens generated so far)."""
    params = seq.params
    row = row.clone()
    for token_id, bias in params.logit_bias.items():
        row[token_id] += bias
    if seq.output_ids and (params.presence_penalty or params.frequency_penalty):
        counts = torch.bincount(torch.tensor(seq.output_ids, device=row.device), minlength=row.shape[-1]).to(
            row.dtype
        )[: row.shape[-1]]
        row -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).to(row.dtype)
    return row

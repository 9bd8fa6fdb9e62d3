"""The scheduler: one thread that owns every forward pass. Concurrent requests to the same base model share
forward passes, whichever of its adapters they ask for (each row applies its own, inference/lora.py): new
prompts are prefilled together, and running sequences advance one token per step in one decode batch per
base (continuous batching: sequences join and leave between steps). `mixed=False` groups per served model
instead, one adapter per pass, as the engine did before (kept for the benchmark's comparison).

Requests hand sequences in through a queue and hear back through each sequence's `notify` callback, so a
slow or vanished client never holds up the loop.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from tuneforge.inference.batch import DecodeBatch, kv_of, prefill_inputs, run_forward
from tuneforge.inference.sampling import choose, seed_generator, top_alternatives
from tuneforge.inference.sequence import Sequence

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5  # how long an idle loop sleeps before checking for shutdown
# What one more forward pass costs, in padded prompt tokens: on the built-in models a pass's fixed Python
# overhead is about that of 32 tokens of compute. Splitting a prefill by prompt length pays it per pass.
_PASS_COST_TOKENS = 32
# Finished rows stay in a decode batch, computing a token nobody reads, until a merge re-packs the cache
# anyway or fewer than 1 in this many rows is live: re-packing copies every layer's keys and values, which on
# the built-in models costs more than a few idle rows.
_REPACK_WHEN_LIVE_BELOW = 2


class Scheduler:
    def __init__(self, max_batch: int, max_prefill_tokens: int, *, mixed: bool = True) -> None:
        self.max_batch = max_batch  # running sequences per batch in one decode step
        self.max_prefill_tokens = max_prefill_tokens  # padded prompt tokens in one prefill pass
        self.mixed = mixed  # one batch per base (adapters mixed), else one per served model
        self._inbox: queue.SimpleQueue[Sequence | None] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._batches: dict[int, DecodeBatch] = {}  # group key (see `_key`) -> its decode batch
        self._stopped = False
        self.forward_passes = 0  # for tests and benchmarks: batching shows as fewer passes
        self._thread = threading.Thread(target=self._run, name="tuneforge-scheduler", daemon=True)
        self._thread.start()

    def submit(self, seqs: list[Sequence]) -> None:
        for seq in seqs:
            self._inbox.put(seq)

    def close(self) -> None:
        self._stopped = True
        self._inbox.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped:
            try:
                self._drain(block=not self._waiting and not self._batches)
                self._prefill_round()
                self._decode_round()
            except Exception as exc:  # a bug here must fail the requests in flight, never hang them
                log.exception("scheduler step failed")
                self._fail_all(exc)

    def _fail_all(self, exc: Exception) -> None:
        seqs = list(self._waiting) + [s for b in self._batches.values() for s in b.seqs]
        self._waiting.clear()
        self._batches.clear()
        for seq in seqs:
            if not seq.finished:
                seq.fail(exc)

    def _drain(self, block: bool) -> None:
        try:
            seq = self._inbox.get(timeout=_IDLE_WAIT_S) if block else self._inbox.get_nowait()
            while True:
                if seq is not None:
                    self._waiting.append(seq)
                seq = self._inbox.get_nowait()
        except queue.Empty:
            return

    # -- prefill -------------------------------------------------------------------------------------

    def _prefill_round(self) -> None:
        """Prefill, per model, as many waiting sequences as fit beside that model's running batch."""
        groups: dict[int, list[Sequence]] = {}
        held: deque[Sequence] = deque()
        for seq in self._waiting:
            if seq.cancelled:
                continue
            group = groups.setdefault(self._key(seq), [])
            if self._fits(seq, group):
                group.append(seq)
            else:
                held.append(seq)
        self._waiting = held
        for group in groups.values():
            for bucket in length_buckets(group, _PASS_COST_TOKENS):
                self._guarded(bucket, functools.partial(self._prefill, bucket))

    def _key(self, seq: Sequence) -> int:
        return id(seq.model.base) if self.mixed else id(seq.model)

    def _fits(self, seq: Sequence, group: list[Sequence]) -> bool:
        if not group:
            return True
        batch = self._batches.get(self._key(seq))
        running = len(batch.live_rows()) if batch is not None else 0
        decoding = sum(1 for s in group if s.params.max_tokens > 1) + (seq.params.max_tokens > 1)
        longest = max(len(s.prompt_ids) for s in [*group, seq])
        return running + decoding <= self.max_batch and longest * (len(group) + 1) <= self.max_prefill_tokens

    def _prefill(self, seqs: list[Sequence]) -> None:
        model = seqs[0].model
        inputs = prefill_inputs(seqs, _pad_id(model), model.device)
        echo = any(s.params.prompt_logprobs for s in seqs)
        logits, cache = run_forward(seqs, None, logits_to_keep=0 if echo else 1, **inputs)
        self.forward_passes += 1
        for i, seq in enumerate(seqs):
            if seq.params.prompt_logprobs:
                _record_prompt_logprobs(seq, logits[i, logits.shape[1] - len(seq.prompt_ids) :])
        rows = [i for i, s in enumerate(seqs) if s.params.max_tokens > 0]
        for seq in seqs:
            if seq.params.max_tokens == 0:
                seq.finish_without_tokens()
            seed_generator(seq, logits.device)
        self._advance([seqs[i] for i in rows], logits[rows, -1, :])
        survivors = [i for i in rows if not seqs[i].finished]
        if survivors:
            self._join(seqs, cache, inputs["attention_mask"], survivors)

    def _join(self, seqs: list[Sequence], cache: Any, mask: torch.Tensor, rows: list[int]) -> None:
        batch = DecodeBatch(seqs, kv_of(cache), mask)
        batch.keep(rows)
        key = self._key(seqs[0])
        running = self._batches.get(key)
        live = running.live_rows() if running is not None else []
        if running is None or not live:
            self._batches[key] = batch
        else:
            running.keep(live)  # merging re-packs the cache anyway: drop the finished rows now
            running.merge(batch)

    # -- decode --------------------------------------------------------------------------------------

    def _decode_round(self) -> None:
        for key, batch in list(self._batches.items()):
            live = batch.live_rows()
            if not live:
                del self._batches[key]
                continue
            if len(live) * _REPACK_WHEN_LIVE_BELOW < len(batch):
                batch.keep(live)
                live = list(range(len(live)))
            if not self._guarded(batch.seqs, functools.partial(self._decode, batch, live)):
                del self._batches[key]

    def _decode(self, batch: DecodeBatch, live: list[int]) -> None:
        """One step for every row; only `live` rows advance (a sequence cancelled meanwhile is skipped by
        `_advance`)."""
        logits = batch.step()
        self.forward_passes += 1
        self._advance([batch.seqs[i] for i in live], logits[live])

    def _advance(self, seqs: list[Sequence], logits: torch.Tensor) -> None:
        for seq, (token, logprob, top) in zip(seqs, choose(logits, seqs), strict=True):
            if not seq.cancelled:
                seq.add_token(token, logprob, top)
                if not seq.finished and seq.total_len >= seq.model.context_length:
                    seq.finish("length")  # the context is full: nothing more can be generated

    def _guarded(self, seqs: list[Sequence], work: Callable[[], None]) -> bool:
        """Run `work`; on failure fail `seqs` (their requests get the error) and go on with the others."""
        try:
            work()
            return True
        except Exception as exc:
            log.exception("generation failed for %d sequences", len(seqs))
            for seq in seqs:
                if not seq.finished:
                    seq.fail(exc)
            return False


def length_buckets(seqs: list[Sequence], pass_cost: int) -> list[list[Sequence]]:
    """Split prompts into runs of similar length, so a short prompt is not padded to the longest: the
    split minimises padded tokens plus `pass_cost` per forward pass (dynamic programming over the
    prompts sorted by length; a batch is at most a few dozen prompts)."""
    ordered = sorted(seqs, key=lambda s: len(s.prompt_ids))
    lengths = [len(s.prompt_ids) for s in ordered]
    best = [0] + [0] * len(ordered)  # best[j]: cheapest cost of the first j prompts
    start = [0] * (len(ordered) + 1)  # start[j]: where the last bucket of that split begins
    for j in range(1, len(ordered) + 1):
        best[j], start[j] = min((best[i] + lengths[j - 1] * (j - i) + pass_cost, i) for i in range(j))
    buckets, j = [], len(ordered)
    while j > 0:
        buckets.append(ordered[start[j] : j])
        j = start[j]
    return buckets[::-1]


def _pad_id(model: Any) -> int:
    pad = model.tokenizer.pad_token_id
    return int(pad) if pad is not None else 0


def _record_prompt_logprobs(seq: Sequence, logits: torch.Tensor) -> None:
    """Logprob of each prompt token given the ones before it; the first token has none."""
    logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
    targets = torch.tensor(seq.prompt_ids[1:], device=logits.device)
    chosen = logprobs.gather(1, targets[:, None]).squeeze(1).tolist()
    tops = top_alternatives(logprobs, [seq.params.top_logprobs] * len(chosen))
    seq.prompt_token_logprobs = [None, *chosen]
    seq.prompt_top_logprobs = [None, *tops]

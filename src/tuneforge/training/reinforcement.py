"""Reinforcement fine-tuning (GRPO, Shao et al., 2024): sample several answers to each prompt, score them
with the job's grader, and raise the log-probability of the answers that beat their group's mean.

A step: the prompts are prefilled once and their KV cache repeated for the G samples each, then decoded
together (left-padded, with an attention mask and per-row positions) by `training.sampling.draw`, the
function `/v1/completions` samples with. The grader scores every sample in one call (python graders run
once per step in one sandboxed process); a grader failure is a score of 0 and a warning, never a failed
step. Advantages are relative to the group: (reward - group mean) / (group std + eps). The loss is PPO's
clipped ratio objective plus `beta` times the k3 estimate of the KL divergence to the reference (the
starting model); one policy forward over all samples gives the new log-probabilities and, under no_grad in
the same loop, the reference's. One optimisation pass is made per batch of samples (TRL's
num_iterations=1), so the old policy is the current one and the ratio starts at 1."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tuneforge.data.records import ReinforcementItem
from tuneforge.graders import AnyGrader, Grading, Sample, grade_many
from tuneforge.spec import ResolvedHyperparameters
from tuneforge.training.batches import MICRO_BATCH_TOKENS
from tuneforge.training.sampling import draw

COLUMNS = [
    "step",
    "elapsed_tokens",
    "elapsed_examples",
    "training_loss",
    "training_reward_mean",
    "training_reward_std",
    "training_full_marks",
    "training_kl",
    "training_sample_length",
]
VALIDATION_COLUMNS = ["validation_reward_mean", "validation_full_marks", "validation_sample_length"]
ADVANTAGE_EPS = 1e-4  # a group whose rewards are all equal has advantage 0, not 0/0
FULL_MARKS = 1.0  # a score this high is full marks (string_check, similarity and label graders top at 1)
BUCKET_SLACK = 8  # tokens of padding a loss-pass bucket of short answers may carry (one pass beats two)
EVAL_SEED = 7  # validation samples are drawn alike at every evaluation, so scores compare step to step


@dataclass(frozen=True)
class PromptItem:
    """A reinforcement item as token ids: the conversation and the assistant's generation prompt, as
    `/v1/chat/completions` renders it; `item` is what graders read as `{{item.<field>}}`."""

    ids: list[int]
    item: dict[str, Any]

    @property
    def tokens(self) -> int:
        return len(self.ids)


def encode_items(items: Sequence[ReinforcementItem], tokenizer: Any, max_prompt: int) -> list[PromptItem]:
    """Each prompt rendered with the chat template; an over-long one keeps its end (the question)."""
    encoded = []
    for item in items:
        messages = [{"role": m.role, "content": m.content} for m in item.messages]
        text = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])[-max_prompt:]
        encoded.append(PromptItem(ids, {"messages": messages, **item.fields}))
    return encoded


@dataclass
class Grader:
    """The job's grader, how to run it, and where to say that it failed on a sample."""

    grader: AnyGrader
    grading: Grading
    warn: Callable[[str], None]


@dataclass
class Rollout:
    """G samples of each prompt: the token rows the loss is computed on, and the answers as text."""

    prompt_ids: torch.Tensor  # (N, P) left-padded prompts, each repeated G times in a row
    prompt_mask: torch.Tensor  # (N, P)
    completion_ids: torch.Tensor  # (N, C) sampled tokens, padded after the end-of-text token
    completion_mask: torch.Tensor  # (N, C) 1 up to and including the end-of-text token
    samples: int  # G: rows i*G .. (i+1)*G-1 answer the same prompt

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)


@dataclass(frozen=True)
class Sampling:
    samples: int  # per prompt
    max_tokens: int
    temperature: float
    eos_id: int
    pad_id: int

    @classmethod
    def of(cls, hp: ResolvedHyperparameters, tokenizer: Any, samples: int | None = None) -> Sampling:
        assert hp.samples_per_prompt and hp.max_sample_tokens and hp.temperature
        return cls(
            samples or hp.samples_per_prompt,
            hp.max_sample_tokens,
            hp.temperature,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        )


@dataclass
class StepResult:
    row: dict[str, float]
    tokens: int  # prompt and sampled tokens the step trained on
    samples: int


# --- sampling ----------------------------------------------------------------------------------------


@torch.no_grad()
def sample(
    model: Any, prompts: Sequence[PromptItem], how: Sampling, generator: torch.Generator, device: torch.device
) -> Rollout:
    """`how.samples` answers to each prompt, decoded with a KV cache: the prompts are prefilled once and
    their cache repeated for the samples. Once half the rows in the batch have drawn their end-of-text
    token, those leave it (and the cache), so that one rambling sample does not keep the whole group
    decoding at full width; dropping rows one at a time would copy the cache at nearly every step."""
    model = getattr(model, "module", model)  # DistributedDataParallel: sampling needs no gradient sync
    model.eval()
    ids, mask = _left_padded([p.ids for p in prompts], how.pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = _cache_of(out)
    cache.batch_repeat_interleave(how.samples)
    g = how.samples
    ids, mask = ids.repeat_interleave(g, 0), mask.repeat_interleave(g, 0)
    logits = out.logits[:, -1].repeat_interleave(g, 0)
    next_position = mask.sum(-1, keepdim=True)
    cache_name = _cache_name(model)
    completion = torch.full((len(ids), how.max_tokens), how.pad_id, dtype=torch.long, device=device)
    active = torch.arange(len(ids), device=device)  # the original row of each row in the cache
    writing = torch.ones(len(ids), dtype=torch.bool, device=device)  # which of those have not ended
    running = mask
    width = how.max_tokens
    for step in range(how.max_tokens):
        token = torch.where(writing, draw(logits, how.temperature, 1.0, generator), how.pad_id)
        completion[active, step] = token
        writing &= token != how.eos_id
        if not bool(writing.any()) or step == how.max_tokens - 1:
            width = step + 1
            break
        if 2 * int(writing.sum()) <= len(writing):  # half have ended: drop them (a copy of the cache)
            keep = writing.nonzero().squeeze(1)
            active, token, running, writing = active[keep], token[keep], running[keep], writing[keep]
            next_position = next_position[keep]
            cache.batch_select_indices(keep)
        running = torch.cat([running, torch.ones_like(running[:, :1])], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=running,
            position_ids=next_position + step,
            use_cache=True,
            **{cache_name: cache},
        )
        cache = _cache_of(out)
        logits = out.logits[:, -1]
    completion = completion[:, :width]
    return Rollout(ids, mask, completion, _through_eos(completion, how.eos_id), g)


def _through_eos(completion: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for each sampled token up to and including the first end-of-text token, 0 after it."""
    ended_before = (completion == eos_id).long().cumsum(dim=1) - (completion == eos_id).long()
    return (ended_before == 0).long()


def texts(rollout: Rollout, tokenizer: Any, eos_id: int) -> list[str]:
    """Each sampled answer as text, without its end-of-text token (what `/v1/chat/completions` returns)."""
    out = []
    for row, keep in zip(rollout.completion_ids.tolist(), rollout.completion_mask.tolist(), strict=True):
        ids = [t for t, k in zip(row, keep, strict=True) if k and t != eos_id]
        out.append(tokenizer.decode(ids, skip_special_tokens=True))
    return out


def _left_padded(
    rows: Sequence[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def _cache_of(out: Any) -> Any:
    return out["cache"] if "cache" in out else out["past_key_values"]


def _cache_name(model: Any) -> str:
    """The cache keyword: `cache` in newer transformers releases, `past_key_values` before."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(inner).forward).parameters else "past_key_values"


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The draws of step `step`: a function of (seed, step), so a resumed run samples what it would have."""
    digest = hashlib.sha256(f"rft:{seed}:{step}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") % 2**63)


# --- rewards -----------------------------------------------------------------------------------------


def rewards(grader: Grader, prompts: Sequence[PromptItem], answers: Sequence[str], g: int) -> torch.Tensor:
    """Each answer's score (prompts[i]'s answers are answers[i*g:(i+1)*g]); failures score 0 and warn."""
    cases = [(Sample.from_text(text), prompts[i // g].item) for i, text in enumerate(answers)]
    results = grade_many(grader.grader, cases, grading=grader.grading)
    failed = [w for r in results for w in r.warnings]
    if failed:
        grader.warn(
            f"{sum(1 for r in results if r.warnings)} of {len(results)} samples got a grader warning "
            f"(a failed grader scores 0); the first: {failed[0]}"
        )
    return torch.tensor([r.score for r in results], dtype=torch.float32)


def group_advantages(scores: torch.Tensor, eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """(B, G) rewards to advantages relative to each prompt's group: (r - mean) / (std + eps)."""
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, keepdim=True) if scores.shape[1] > 1 else torch.zeros_like(mean)
    return (scores - mean) / (std + eps)


# --- the objective -----------------------------------------------------------------------------------


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from tokens sampled by the policy (Schulman's k3:
    unbiased and never negative): exp(ref - logp) - (ref - logp) - 1."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def clipped_objective(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, epsilon: float
) -> torch.Tensor:
    """PPO's per-token surrogate to maximise: min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)."""
    ratio = torch.exp(logps - old_logps)
    return torch.minimum(ratio * advantages, ratio.clamp(1 - epsilon, 1 + epsilon) * advantages)


def sequence_losses(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) losses, each the mean over its sequence's tokens (GRPO's normalisation), and (N,) mean KLs."""
    kl = kl_k3(logps, ref_logps)
    per_token = -clipped_objective(logps, old_logps, advantages[:, None], epsilon) + beta * kl
    tokens = mask.sum(dim=1).clamp(min=1)
    return (per_token * mask).sum(dim=1) / tokens, ((kl * mask).sum(dim=1) / tokens).detach()


def completion_logps(model: Any, rollout: Rollout, rows: torch.Tensor) -> torch.Tensor:
    """(n, c) log-probabilities under `model` of the sampled tokens of `rows` (indices), c being their
    longest answer. Each distinct prompt among them goes through the network once, and its KV cache
    (gradient and all) is given to each of its answers, as sampling did: a GRPO prompt is usually longer
    than its answers, so a full row per answer would spend most of the pass on copies of its prompt."""
    width = max(1, int(rollout.lengths[rows].max()))
    used = int(rollout.prompt_mask[rows].sum(dim=1).max())  # left-padded: the last `used` columns suffice
    if _checkpointing(model):  # it turns the cache off: whole rows instead
        return _row_logps(model, rollout, rows, used, width)
    groups, of_group = torch.unique(rows // rollout.samples, return_inverse=True)
    firsts = groups * rollout.samples  # each prompt's first row
    prompt_ids, prompt_mask = rollout.prompt_ids[firsts, -used:], rollout.prompt_mask[firsts, -used:]
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[of_group, -1:]  # (n, 1, V): each answer's first token
    answers = rollout.completion_ids[rows, :width]
    if width > 1:
        cache = _cache_of(out)
        cache.batch_select_indices(of_group)  # each answer's row: its prompt's keys and values
        mask = torch.cat([prompt_mask[of_group], rollout.completion_mask[rows, : width - 1]], dim=1)
        starts = prompt_mask.sum(dim=1, keepdim=True)[of_group]
        rest = model(
            input_ids=answers[:, :-1],
            attention_mask=mask,
            position_ids=starts + torch.arange(width - 1, device=starts.device),
            use_cache=True,
            **{_cache_name(model): cache},
        ).logits
        logits = torch.cat([logits, rest], dim=1)
    return _picked(logits, answers)


def _row_logps(model: Any, rollout: Rollout, rows: torch.Tensor, used: int, width: int) -> torch.Tensor:
    """`completion_logps` with each row's prompt and answer in one pass of its own."""
    ids = torch.cat([rollout.prompt_ids[rows, -used:], rollout.completion_ids[rows, :width]], dim=1)
    mask = torch.cat([rollout.prompt_mask[rows, -used:], rollout.completion_mask[rows, :width]], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=width + 1
    ).logits[:, :-1]
    return _picked(logits, rollout.completion_ids[rows, :width])


def _checkpointing(model: Any) -> bool:
    """Whether gradient checkpointing is on (transformers 5 renamed the attribute)."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name) or hasattr(model, name):
            return bool(getattr(model, name))
    return False


def _picked(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def accumulate(
    model: Any,
    reference: Callable[[], contextlib.AbstractContextManager[Any]],
    rollout: Rollout,
    advantages: torch.Tensor,
    hp: ResolvedHyperparameters,
    factor: float,
) -> tuple[float, float]:
    """Forward and backward over the rollout's rows in chunks; the gradient is that of the mean loss over
    all rows. `reference()` is a context in which `model` computes as the starting model. Returns the
    mean loss and mean KL."""
    assert hp.beta is not None and hp.clip_epsilon is not None
    n = len(rollout.completion_ids)
    loss_sum = kl_sum = 0.0
    for rows in _length_buckets(rollout):
        with torch.no_grad(), reference() as ref_model:
            ref = completion_logps(ref_model, rollout, rows)
        model.train()
        logps = completion_logps(model, rollout, rows)
        losses, kl = sequence_losses(
            logps,
            logps.detach(),
            ref,
            advantages[rows],
            rollout.completion_mask[rows, : logps.shape[1]],
            hp.beta,
            hp.clip_epsilon,
        )
        (losses.sum() / n * factor).backward()
        loss_sum += float(losses.detach().sum())
        kl_sum += float(kl.sum())
    return loss_sum / n, kl_sum / n


def _length_buckets(rollout: Rollout, budget: int = MICRO_BATCH_TOKENS) -> Iterator[torch.Tensor]:
    """The rows, shortest answer first, in buckets whose longest answer is at most twice (plus a few
    tokens) their shortest, and whose padded tokens stay within `budget`: one rambling sample pads only
    its own bucket, not all G x B answers, to its length."""
    lengths = rollout.lengths.tolist()
    prompts = rollout.prompt_mask.sum(dim=1).tolist()
    bucket: list[int] = []
    prompt = 0  # the longest prompt in the bucket
    for row in sorted(range(len(lengths)), key=lengths.__getitem__):
        if bucket:
            shortest, longest = lengths[bucket[0]], lengths[row]
            padded = (len(bucket) + 1) * (longest + max(prompt, prompts[row]))
            if longest > 2 * shortest + BUCKET_SLACK or padded > budget:
                yield torch.tensor(bucket)
                bucket, prompt = [], 0
        bucket.append(row)
        prompt = max(prompt, prompts[row])
    yield torch.tensor(bucket)


# --- a step and an evaluation ------------------------------------------------------------------------


def train_step(
    model: Any,
    reference: Callable[[], contextlib.AbstractContextManager[Any]],
    prompts: Sequence[PromptItem],
    grader: Grader,
    tokenizer: Any,
    hp: ResolvedHyperparameters,
    generator: torch.Generator,
    device: torch.device,
    factor: float = 1.0,
) -> StepResult:
    """Sample, grade, and accumulate the gradient of one step (the caller steps the optimizer)."""
    how = Sampling.of(hp, tokenizer)
    rollout = sample(model, prompts, how, generator, device)
    answers = texts(rollout, tokenizer, how.eos_id)
    scores = rewards(grader, prompts, answers, how.samples)
    advantages = group_advantages(scores.view(len(prompts), how.samples)).reshape(-1).to(device)
    loss, kl = accumulate(model, reference, rollout, advantages, hp, factor)
    lengths = rollout.lengths.float()
    row = {
        "training_loss": loss,
        "training_reward_mean": float(scores.mean()),
        "training_reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
        "training_full_marks": float((scores >= FULL_MARKS).float().mean()),
        "training_kl": kl,
        "training_sample_length": float(lengths.mean()),
    }
    tokens = int(rollout.prompt_mask.sum()) + int(lengths.sum())
    return StepResult(row, tokens, len(answers))


@torch.no_grad()
def evaluate(
    model: Any,
    prompts: Sequence[PromptItem],
    grader: Grader,
    tokenizer: Any,
    hp: ResolvedHyperparameters,
    device: torch.device,
) -> dict[str, float]:
    """The grader's mean score over `eval_samples` samples of each validation prompt, drawn at the
    training temperature from the same seed at every evaluation."""
    how = Sampling.of(hp, tokenizer, samples=hp.eval_samples)
    generator = torch.Generator(device=device).manual_seed(EVAL_SEED)
    scores, lengths = [], []
    for start in range(0, len(prompts), max(1, hp.batch_size)):
        chunk = prompts[start : start + hp.batch_size]
        rollout = sample(model, chunk, how, generator, device)
        scores.append(rewards(grader, chunk, texts(rollout, tokenizer, how.eos_id), how.samples))
        lengths.append(rollout.lengths.float().cpu())
    every, length = torch.cat(scores), torch.cat(lengths)
    return {
        "validation_reward_mean": float(every.mean()),
        "validation_full_marks": float((every >= FULL_MARKS).float().mean()),
        "validation_sample_length": float(length.mean()),
    }


# --- the reference model -----------------------------------------------------------------------------


def reference_context(model: Any, frozen: Any | None) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """How to compute as the starting model: a frozen copy when there is one (full tuning, or LoRA on an
    earlier adapter), else the LoRA model with its fresh adapter switched off."""
    if frozen is not None:
        return lambda: contextlib.nullcontext(frozen)

    @contextlib.contextmanager
    def adapter_off() -> Iterator[Any]:
        with model.disable_adapter():
            yield model

    return adapter_off

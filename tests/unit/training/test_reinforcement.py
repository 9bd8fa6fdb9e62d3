"""GRPO's parts on tiny tensors (group advantages, the k3 KL, the clipped ratio), the KV-cached sampler
against a plain forward pass, and a tiny model whose grader reward rises when trained on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from tests.unit.training.conftest import write_jsonl
from tests.unit.training.test_recipe import CrashAtStep, results
from tuneforge.data.records import ChatMessage, ReinforcementItem
from tuneforge.graders import Grading
from tuneforge.graders.models import TextSimilarityGrader
from tuneforge.settings import Settings
from tuneforge.spec import ResolvedHyperparameters, TrainJob, TrainSpec
from tuneforge.training import formats
from tuneforge.training import reinforcement as rft
from tuneforge.training.byte_tokenizer import build_byte_tokenizer
from tuneforge.training.events import ListSink, MessageEvent
from tuneforge.training.recipe import train

CPU = torch.device("cpu")


def test_advantages_are_relative_to_each_group_and_zero_where_all_score_alike() -> None:
    scores = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    adv = rft.group_advantages(scores)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std()
    assert torch.allclose(adv[0], (scores[0] - 0.5) / (std + rft.ADVANTAGE_EPS))
    assert torch.equal(adv[1], torch.zeros(4))
    assert adv[0, 0] > 0 > adv[0, 1]


def test_k3_kl_is_zero_at_the_reference_positive_elsewhere_and_matches_its_formula() -> None:
    logps = torch.tensor([-1.0, -2.0, -0.5])
    assert torch.equal(rft.kl_k3(logps, logps), torch.zeros(3))
    ref = torch.tensor([-1.5, -1.0, -0.5])
    kl = rft.kl_k3(logps, ref)
    delta = ref - logps
    assert torch.allclose(kl, torch.exp(delta) - delta - 1)
    assert (kl[:2] > 0).all()


def test_k3_estimates_the_kl_divergence_from_samples_of_the_policy() -> None:
    policy = torch.tensor([0.7, 0.2, 0.1])
    reference = torch.tensor([0.4, 0.4, 0.2])
    draws = torch.multinomial(policy, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = rft.kl_k3(policy.log()[draws], reference.log()[draws]).mean()
    exact = (policy * (policy / reference).log()).sum()
    assert abs(float(estimate - exact)) < 0.01


def test_the_clipped_objective_stops_the_gradient_once_the_ratio_leaves_the_clip_range() -> None:
    old = torch.zeros(4)
    # ratios 1.0 and 1.5 with a positive advantage, 1.0 and 0.5 with a negative one
    logps = torch.tensor([1.0, 1.5, 1.0, 0.5]).log().requires_grad_(True)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    rft.clipped_objective(logps, old, advantages, epsilon=0.2).sum().backward()
    assert logps.grad is not None
    grad = logps.grad.tolist()
    assert grad[0] == pytest.approx(1.0) and grad[2] == pytest.approx(-1.0)  # inside: d(ratio*A)/dlogp
    assert grad[1] == 0.0 and grad[3] == 0.0  # clipped: pushing further earns nothing


def test_sequence_losses_average_each_sequence_over_its_own_tokens() -> None:
    logps = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    advantages = torch.tensor([2.0, -1.0])
    losses, kl = rft.sequence_losses(logps, logps, logps, advantages, mask, beta=0.1, epsilon=0.2)
    assert losses.tolist() == pytest.approx([-2.0, 1.0])  # -ratio * A, ratio 1, padding not counted
    assert kl.tolist() == [0.0, 0.0]


# --- a tiny model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    tokenizer = build_byte_tokenizer()
    formats.ensure_chat_template(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.5,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tokenizer


def prompts(tokenizer: Any, words: list[str]) -> list[rft.PromptItem]:
    items = [ReinforcementItem((ChatMessage("user", f"say {w}"),), {"word": w}) for w in words]
    return rft.encode_items(items, tokenizer, max_prompt=200)


def test_kv_cached_samples_score_as_a_plain_forward_pass_scores_them(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    batch = prompts(tokenizer, ["a", "longer words here"])  # unequal lengths: left padding matters
    how = rft.Sampling(3, 6, 1.0, tokenizer.eos_token_id, tokenizer.pad_token_id)
    rollout = rft.sample(model, batch, how, torch.Generator().manual_seed(0), CPU)
    assert rollout.completion_ids.shape[0] == 6
    with torch.no_grad():
        batched = rft.completion_logps(model, rollout, torch.arange(len(rollout.completion_ids)))
        for row in range(6):
            length = int(rollout.lengths[row])  # the answer through its end-of-text token
            prompt, answer = batch[row // 3].ids, rollout.completion_ids[row, :length].tolist()
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
            alone = logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).squeeze(-1)
            assert torch.allclose(batched[row, :length], alone, atol=1e-4)
        some = torch.tensor([4, 0, 5])  # any rows, in any order, of several prompts
        picked = rft.completion_logps(model, rollout, some)
        for i, row in enumerate(some.tolist()):
            length = int(rollout.lengths[row])
            assert torch.allclose(picked[i, :length], batched[row, :length], atol=1e-5)


def test_loss_buckets_hold_every_row_once_and_keep_a_rambling_answer_apart() -> None:
    lengths = [3, 4, 3, 40, 5, 4, 6, 3]
    completion = torch.zeros(8, 40, dtype=torch.long)
    mask = torch.tensor([[1] * n + [0] * (40 - n) for n in lengths])
    rollout = rft.Rollout(torch.zeros(8, 5, dtype=torch.long), torch.ones(8, 5), completion, mask, 4)
    buckets = [b.tolist() for b in rft._length_buckets(rollout)]
    assert sorted(r for b in buckets for r in b) == list(range(8))
    assert [3] in buckets  # the 40-token answer pads no other row
    assert len(buckets) == 2


def test_rows_that_end_leave_the_batch_and_the_others_still_decode_from_their_own_cache(
    tiny: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny
    batch = prompts(tokenizer, ["a", "longer words here"])
    how = rft.Sampling(4, 12, 1.0, tokenizer.eos_token_id, tokenizer.pad_token_id)
    # The random model rarely draws its end-of-text token: put its logit just under the best one, so that
    # rows end at different steps and the batch shrinks several times.
    eos = tokenizer.eos_token_id

    def likely_end(_module: Any, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[..., eos] = logits.max(dim=-1).values - 1.0
        return logits

    hook = model.lm_head.register_forward_hook(likely_end)
    try:
        rollout = rft.sample(model, batch, how, torch.Generator().manual_seed(1), CPU)
        lengths = rollout.lengths.tolist()
        assert len(set(lengths)) > 2, lengths
        with torch.no_grad():
            batched = rft.completion_logps(model, rollout, torch.arange(len(rollout.completion_ids)))
            for row, length in enumerate(lengths):
                answer = rollout.completion_ids[row].tolist()
                assert answer[length:] == [tokenizer.pad_token_id] * (len(answer) - length)
                prompt, answer = batch[row // 4].ids, answer[:length]
                logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
                alone = logits.log_softmax(-1).gather(-1, torch.tensor(answer)[:, None]).squeeze(-1)
                assert torch.allclose(batched[row, :length], alone, atol=1e-4)
    finally:
        hook.remove()


def test_a_prompt_computed_once_for_its_group_gives_the_gradient_of_whole_rows(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    batch = prompts(tokenizer, ["a", "longer words here", "mid size"])
    how = rft.Sampling(3, 6, 1.0, tokenizer.eos_token_id, tokenizer.pad_token_id)
    rollout = rft.sample(model, batch, how, torch.Generator().manual_seed(2), CPU)
    width = int(rollout.lengths.max())
    used = int(rollout.prompt_mask.sum(dim=1).max())
    mask = rollout.completion_mask[:, :width]
    grads = []
    for shared in (True, False):
        model.zero_grad()
        if shared:
            logps = rft.completion_logps(model, rollout, torch.arange(9))
        else:
            logps = rft._row_logps(model, rollout, torch.arange(9), used, width)
        ((logps * mask).sum() / mask.sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad()
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-5, rtol=1e-4), name


def test_equal_seeds_draw_equal_samples(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    how = rft.Sampling(4, 5, 1.0, tokenizer.eos_token_id, tokenizer.pad_token_id)
    draws = [
        rft.sample(model, prompts(tokenizer, ["x"]), how, rft.step_generator(3, 10, CPU), CPU).completion_ids
        for _ in range(2)
    ]
    other = rft.sample(model, prompts(tokenizer, ["x"]), how, rft.step_generator(3, 11, CPU), CPU)
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], other.completion_ids)


def hyperparameters(**overrides: Any) -> ResolvedHyperparameters:
    values: dict[str, Any] = {
        "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1.0, "learning_rate": 3e-3,
        "prompt_loss_weight": 0.0, "tuning": "full", "seed": 0, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "warmup_steps": 1, "weight_decay": 0.0, "total_steps": 1, "beta": 0.04,
        "samples_per_prompt": 8, "compute_multiplier": 1.0, "eval_interval": 1, "eval_samples": 4,
        "reasoning_effort": "default", "max_sample_tokens": 3, "temperature": 1.0, "clip_epsilon": 0.2,
    }  # fmt: skip
    return ResolvedHyperparameters(**{**values, **overrides})


def letters(answers: list[str]) -> torch.Tensor:
    """A dense reward: the share of an answer's characters that are lowercase letters."""
    return torch.tensor([sum(c.islower() for c in a) / max(1, len(a)) for a in answers])


def test_grpo_steps_raise_the_reward_of_a_tiny_model_and_leave_the_reference_alone(
    tiny: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny
    frozen = LlamaForCausalLM(model.config)
    frozen.load_state_dict(model.state_dict())
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    reference = rft.reference_context(model, frozen.eval())
    hp = hyperparameters()
    how = rft.Sampling.of(hp, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = prompts(tokenizer, ["one", "two", "three", "four"])
    rewards, kls = [], []
    for step in range(25):
        rollout = rft.sample(model, batch, how, rft.step_generator(0, step, CPU), CPU)
        scores = letters(rft.texts(rollout, tokenizer, how.eos_id))
        advantages = rft.group_advantages(scores.view(len(batch), how.samples)).reshape(-1)
        _, kl = rft.accumulate(model, reference, rollout, advantages, hp, factor=1.0)
        optimizer.step()
        optimizer.zero_grad()
        rewards.append(float(scores.mean()))
        kls.append(kl)
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.25, rewards
    assert kls[0] == pytest.approx(0.0, abs=1e-6) and kls[-1] > 0  # it moved away from the reference
    assert all(torch.equal(p, start[n]) for n, p in frozen.named_parameters())


def test_a_failing_grader_scores_zero_and_warns_instead_of_failing(tiny: tuple[Any, Any]) -> None:
    _, tokenizer = tiny
    grader = TextSimilarityGrader(
        name="missing", input="{{item.nothing}}", reference="x", evaluation_metric="fuzzy_match"
    )
    warnings: list[str] = []
    judge = rft.Grader(grader, Grading(), warn=warnings.append)
    scores = rft.rewards(judge, prompts(tokenizer, ["a"]), ["x", "y"], g=2)
    assert scores.tolist() == [0.0, 0.0]
    assert len(warnings) == 1 and "missing" in warnings[0] and "2 of 2" in warnings[0]


# --- the recipe -------------------------------------------------------------------------------------


def reinforcement_job(tmp_path: Path, out: str, **options: Any) -> TrainJob:
    items = [{"messages": [{"role": "user", "content": f"say {w}"}], "word": w} for w in "abcd"]
    data = write_jsonl(tmp_path / "items.jsonl", items)  # type: ignore[arg-type]
    grader = {
        "type": "text_similarity",
        "name": "echo",
        "input": "{{sample.output_text}}",
        "reference": "{{item.word}}",
        "evaluation_metric": "fuzzy_match",
    }
    hyperparameters = {
        "n_epochs": 2,
        "batch_size": 2,
        "compute_multiplier": 0.25,  # 2 samples per prompt, the fewest
        "reasoning_effort": "low",
        "eval_interval": 2,
        "eval_samples": 1,
    }
    spec = TrainSpec.model_validate(
        {
            "model": "tiny",
            "training_file": str(data),
            "validation_file": str(data),
            "tuning": "lora",
            "seed": 0,
            "method": {"type": "reinforcement", "hyperparameters": hyperparameters, "grader": grader},
        }
    )
    return TrainJob.local(spec, tmp_path / out, threads=1, **options)


@pytest.mark.slow
def test_a_killed_reinforcement_run_resumes_to_the_weights_and_rows_of_an_uninterrupted_one(
    settings: Settings, tmp_path: Path
) -> None:
    sink = ListSink()
    whole = train(reinforcement_job(tmp_path, "whole", checkpoint_every=1), settings, sink)
    cut = reinforcement_job(tmp_path, "cut", checkpoint_every=1)
    with pytest.raises(SystemExit):
        train(cut, settings, CrashAtStep(step=3))  # after the resume state of step 2
    resumed = train(cut.model_copy(update={"resume": True}), settings, ListSink())

    a, b = (load_file(str(run.output_dir / "adapter_model.safetensors")) for run in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert results(whole.output_dir) == results(resumed.output_dir)  # the same samples, rewards and KLs
    rows = results(whole.output_dir)
    assert {"training_reward_mean", "training_kl", "validation_reward_mean"} <= set(rows[-1])
    assert rows[-1]["validation_reward_mean"] != ""
    assert whole.hyperparameters.samples_per_prompt == 2 and whole.hyperparameters.max_sample_tokens == 128
    said = [e.message for e in sink.of_type(MessageEvent)]
    assert any("reasoning_effort=low" in m and "128 tokens" in m for m in said)

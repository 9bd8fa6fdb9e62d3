"""The packed DPO pass (each pair as one row, the shared prompt computed once) scores every output as a
separate forward pass of that output alone does, and its gradient is theirs."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PretrainedConfig

from tuneforge.training import preference
from tuneforge.training.formats import Example
from tuneforge.training.preference import PairExample

PAD = 0


def example(prompt: list[int], completion: list[int]) -> Example:
    ids = prompt + completion
    target = [False] * len(prompt) + [True] * len(completion)
    return Example(ids, [float(t) for t in target], target, len(prompt), "")


def pairs() -> list[PairExample]:
    """Prompts of different lengths (so rows pad), outputs that share their first tokens, outputs that
    share nothing with the prompt's end, and a pair whose two outputs are the same."""
    rng = random.Random(0)

    def tokens(n: int) -> list[int]:
        return [rng.randrange(1, 60) for _ in range(n)]

    made = []
    for prompt_len, shared, chosen_len, rejected_len in [
        (7, 0, 5, 9),
        (12, 3, 6, 4),
        (3, 0, 1, 2),
        (9, 2, 2, 7),
    ]:
        prompt, common = tokens(prompt_len), tokens(shared)
        made.append(
            PairExample(
                example(prompt, common + tokens(chosen_len)), example(prompt, common + tokens(rejected_len))
            )
        )
    prompt, same = tokens(5), tokens(4)
    made.append(PairExample(example(prompt, same), example(prompt, same)))
    return made


def tiny_model(config: PretrainedConfig, attention: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attention)
    return model.float().eval()  # no dropout: the two ways must see the same network


CONFIGS = {
    "llama": LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.5,
        pad_token_id=PAD,
    ),
    "gpt2": GPT2Config(
        vocab_size=64, n_embd=32, n_layer=2, n_head=4, initializer_range=0.5, pad_token_id=PAD
    ),
}


def alone(model: torch.nn.Module, e: Example) -> torch.Tensor:
    """The output's summed log-probability from a forward pass over its sequence alone."""
    ids = torch.tensor([e.ids])
    logps = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    scored = logps.gather(-1, ids[0, 1:, None])[:, 0]
    return (scored * torch.tensor(e.target[1:])).sum()


@pytest.mark.parametrize(("family", "attention"), [("llama", "sdpa"), ("llama", "eager"), ("gpt2", "sdpa")])
def test_the_packed_pass_gives_each_output_the_log_probability_and_gradient_of_its_own_pass(
    family: str, attention: str
) -> None:
    model = tiny_model(CONFIGS[family], attention)
    batch = pairs()
    assert preference.packed_length(batch[1]) < batch[1].tokens  # the prompt really is shared

    packed = preference.sequence_logps(model, batch, PAD, torch.device("cpu"))
    packed.sum().backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    separate = torch.stack(
        [alone(model, p.chosen) for p in batch] + [alone(model, p.rejected) for p in batch]
    )
    separate.sum().backward()

    torch.testing.assert_close(packed, separate, rtol=1e-5, atol=1e-4)
    assert float(packed[4]) == pytest.approx(float(packed[4 + len(batch)]), abs=1e-4)  # the same output twice
    for got, want in zip(packed_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_chunks_bound_the_padded_tokens_of_each_packed_pass() -> None:
    batch = pairs() * 10
    chunks = list(preference._chunks(batch, budget=100))
    assert [p for chunk in chunks for p in chunk] == batch
    assert all(max(map(preference.packed_length, c)) * len(c) <= 100 for c in chunks if len(c) > 1)

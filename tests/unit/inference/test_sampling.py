"""Token choice: OpenAI's penalties and logit_bias, nucleus sampling, seeded generators."""

from __future__ import annotations

import torch

from tuneforge.inference.sampling import _shaped, choose, seed_generator
from tuneforge.inference.sequence import SamplingParams, Sequence
from tuneforge.training.sampling import nucleus


def _seq(**params: object) -> Sequence:
    return Sequence(None, [1, 2], SamplingParams(max_tokens=8, **params))  # type: ignore[arg-type]


def test_penalties_and_bias_follow_openais_definitions() -> None:
    seq = _seq(presence_penalty=0.5, frequency_penalty=1.0, logit_bias={3: 2.0})
    seq.output_ids = [5, 5, 7]
    row = _shaped(torch.zeros(10), seq)
    expected = torch.zeros(10)
    expected[5], expected[7], expected[3] = -2.0 - 0.5, -1.0 - 0.5, 2.0
    assert torch.equal(row, expected)


def test_nucleus_keeps_the_smallest_set_reaching_top_p() -> None:
    probs = torch.tensor([0.125, 0.5, 0.375])  # exact in binary floating point
    assert nucleus(probs, 0.6).tolist() == [0.0, 0.5, 0.375]
    assert nucleus(probs, 0.4).tolist() == [0.0, 0.5, 0.0]


def test_reported_logprobs_are_the_raw_distribution_whatever_shapes_the_choice() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    seq = _seq(temperature=0.0, logit_bias={0: 100.0}, top_logprobs=2)
    ((token, logprob, top),) = choose(logits, [seq])
    raw = torch.log_softmax(logits[0], -1)
    assert token == 0 and logprob == raw[0].item()
    assert top == [(2, raw[2].item()), (1, raw[1].item())]


def test_a_seed_and_choice_index_fix_the_sample() -> None:
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))

    def sample(seed: int, index: int) -> int:
        seq = Sequence(None, [1], SamplingParams(max_tokens=1, seed=seed), index=index)  # type: ignore[arg-type]
        seed_generator(seq, torch.device("cpu"))
        return choose(logits, [seq])[0][0]

    assert [sample(7, 0) for _ in range(3)] == [sample(7, 0)] * 3
    assert len({sample(7, i) for i in range(8)}) > 1

"""Predictions through a Completer: greedy generations, and label probabilities scored the way training
measured them, read from `/v1/completions` with `echo` and `logprobs` (see `label_probabilities`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneforge.evaluation.completers import Completer
from tuneforge.evaluation.examples import EvalExample
from tuneforge.evaluation.requests import ChatRequest, CompletionRequest, Message


async def generate(
    completer: Completer, model: str, example: EvalExample, *, max_tokens: int, seed: int
) -> str:
    if example.prompt is not None:
        req = CompletionRequest(model=model, prompt=example.prompt, max_tokens=max_tokens, seed=seed)
        response = await completer.complete(req)
    else:
        messages = tuple(Message(role, content) for role, content in example.messages)
        chat = ChatRequest(model=model, messages=messages, max_tokens=max_tokens, seed=seed)
        response = await completer.chat(chat)
    choice = response["choices"][0]
    return str(choice["text"] if "text" in choice else choice["message"]["content"] or "")


async def label_probabilities(
    completer: Completer, model: str, prompt: str, labels: Sequence[str], *, eos: str | None
) -> np.ndarray:
    """P(label | prompt) for each label, from one echo request holding prompt + label for every label.

    As the training recipe measures it: when the labels begin with distinct tokens, the distribution of
    the first completion token renormalised over the labels (what a `max_tokens=1` classifier answers);
    otherwise each label's whole log-probability, end-of-text included, renormalised."""
    texts = [prompt + label + (eos or "") for label in labels]
    req = CompletionRequest(model=model, prompt=texts, max_tokens=0, echo=True, logprobs=0)
    response = await completer.complete(req)
    choices = sorted(response["choices"], key=lambda c: int(c["index"]))
    continuations = [_continuation(choice["logprobs"], len(prompt)) for choice in choices]
    firsts = [tokens[0] if tokens else ("", -1e30) for tokens in continuations]
    if len({token for token, _ in firsts}) == len(labels):
        scores = np.array([logprob for _, logprob in firsts])
    else:
        scores = np.array([sum(lp for _, lp in tokens) for tokens in continuations])
    scores = np.where(np.isfinite(scores), scores, -1e30)
    scores -= scores.max()
    weights = np.exp(scores)
    return weights / weights.sum()


def _continuation(logprobs: dict[str, Any], prompt_chars: int) -> list[tuple[str, float]]:
    """The (token, log-probability) pairs of the tokens that end after the prompt (a token straddling the
    boundary belongs to the label: the label changed how the prompt's end was tokenized)."""
    return [
        (str(token), float(logprob))
        for token, logprob, offset in zip(
            logprobs["tokens"], logprobs["token_logprobs"], logprobs["text_offset"], strict=True
        )
        if offset + len(token) > prompt_chars and logprob is not None
    ]

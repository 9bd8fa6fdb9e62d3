"""`/v1/chat/completions` semantics: messages are rendered with the model's chat template (the one it was
trained with, stored in its tokenizer; the documented built-in template for models without one), then
generated like a completion. Stops are the model's end-of-text token and manifest stops plus the
request's `stop`, as for completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Sequence as Seq
from typing import Any

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id, now
from tuneforge.inference.profile import DEFAULT_CHAT_TEMPLATE
from tuneforge.inference.registry import LoadedModel
from tuneforge.inference.requests import ChatParams, MessageLike
from tuneforge.inference.runtime import Job, Runtime, off_the_loop_if_long
from tuneforge.inference.sequence import Progress, SamplingParams, Sequence
from tuneforge.inference.validation import (
    check_context,
    check_prompt_chars,
    check_range,
    check_sampling,
    request_stops,
    token_bias,
    vocab_size,
)

MAX_TOP_LOGPROBS = 20  # OpenAI's limit for chat

Result = dict[str, Any] | AsyncIterator[dict[str, Any]]


async def create(rt: Runtime, req: ChatParams) -> Result:
    _check(req)
    model = await rt.acquire(req.model)
    try:
        chars = sum(len(m.text()) for m in req.messages)
        prompt_ids = await off_the_loop_if_long(chars, render, req.messages, model)
        params = _sampling_params(req, model, prompt_ids)
        job = rt.start(model, [(prompt_ids, params, j) for j in range(req.n)], stream=req.stream)
    except BaseException:
        rt.release(model)
        raise
    header = {"id": new_id("chatcmpl"), "created": now(), "model": req.model}
    if req.stream:
        return _stream(rt, job, req, header, len(prompt_ids))
    try:
        seqs = await job.wait()
    finally:
        job.cancel()
        rt.release(model)
    choices = [_choice(seq, req) for seq in seqs]
    return {**header, "object": "chat.completion", "choices": choices, "usage": _usage(len(prompt_ids), seqs)}


def _check(req: ChatParams) -> None:
    check_sampling(req)
    if not req.messages:
        raise InvalidRequest("'messages' must hold at least one message.", param="messages")
    if req.top_logprobs is not None:
        check_range(req.top_logprobs, 0, MAX_TOP_LOGPROBS, "top_logprobs")
        if not req.logprobs:
            raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(req, param)
        if value is not None and value < 1:
            raise InvalidRequest(f"{value} is less than the minimum of 1 - '{param}'", param=param)


def render(messages: Seq[MessageLike], model: LoadedModel) -> list[int]:
    """Token ids of the conversation plus the assistant's generation prompt, as training rendered it."""
    tokenizer = model.tokenizer
    template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
    conversation = [{"role": m.role, "content": m.text()} for m in messages]
    text = tokenizer.apply_chat_template(
        conversation, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    text = str(text)
    check_prompt_chars(len(text), model.context_length, model.max_token_chars, prompt_param="messages")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _sampling_params(req: ChatParams, model: LoadedModel, prompt_ids: list[int]) -> SamplingParams:
    context = model.context_length
    max_tokens = req.max_completion_tokens or req.max_tokens
    check_context(len(prompt_ids), max_tokens or 1, context, prompt_param="messages")
    return SamplingParams(
        max_tokens=max_tokens or context - len(prompt_ids),  # unset: until the end of the context
        temperature=req.temperature,
        top_p=req.top_p,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        logit_bias=token_bias(req.logit_bias, vocab_size(model)),
        seed=req.seed,
        logprobs=req.logprobs,
        top_logprobs=(req.top_logprobs or 0) if req.logprobs else 0,
        stop=model.profile.stop + request_stops(req.stop),
        stop_token_ids=frozenset(model.eos_ids()),
    )


def _usage(prompt_tokens: int, seqs: list[Sequence]) -> dict[str, int]:
    completion = sum(s.generated for s in seqs)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def _choice(seq: Sequence, req: ChatParams) -> dict[str, Any]:
    logprobs = (
        {"content": _content_logprobs(seq, 0, len(seq.output_ids)), "refusal": None} if req.logprobs else None
    )
    return {
        "index": seq.index,
        "message": {"role": "assistant", "content": seq.text, "refusal": None},
        "logprobs": logprobs,
        "finish_reason": seq.finish_reason,
    }


def _content_logprobs(seq: Sequence, start: int, end: int) -> list[dict[str, Any]]:
    model = seq.model
    return [
        {
            **_token(model, seq.output_ids[k], seq.token_logprobs[k]),
            "top_logprobs": [_token(model, t, lp) for t, lp in seq.top_logprobs[k]],
        }
        for k in range(start, end)
    ]


def _token(model: LoadedModel, token_id: int, logprob: float) -> dict[str, Any]:
    return {
        "token": model.token_label(token_id),
        "logprob": logprob,
        "bytes": list(model.token_bytes(token_id)),
    }


async def _stream(
    rt: Runtime, job: Job, req: ChatParams, header: dict[str, Any], prompt_tokens: int
) -> AsyncIterator[dict[str, Any]]:
    model = job.seqs[0].model
    sent = {id(seq): (0, 0) for seq in job.seqs}  # characters and tokens already sent, per choice
    try:
        for seq in job.seqs:  # OpenAI opens each choice with the role
            yield _chunk(header, {"index": seq.index, "delta": {"role": "assistant", "content": ""}})
        async for seq, progress in job.events():
            choice, sent[id(seq)] = _delta(seq, progress, req, *sent[id(seq)])
            if choice is not None:
                yield _chunk(header, choice)
        if req.stream_options is not None and req.stream_options.include_usage:
            yield {**_chunk(header, None), "usage": _usage(prompt_tokens, job.seqs)}
    finally:
        job.cancel()
        rt.release(model)


def _chunk(header: dict[str, Any], choice: dict[str, Any] | None) -> dict[str, Any]:
    if choice is not None:
        choice.setdefault("logprobs", None)
        choice.setdefault("finish_reason", None)
    return {**header, "object": "chat.completion.chunk", "choices": [choice] if choice else []}


def _delta(
    seq: Sequence, progress: Progress, req: ChatParams, chars: int, tokens: int
) -> tuple[dict[str, Any] | None, tuple[int, int]]:
    """Text no stop sequence can still claim, the tokens inside it, and the new (chars, tokens) sent."""
    text, done = progress.text, progress.finish_reason is not None
    safe = len(text) if done else len(text) - seq.holdback(text)
    count = min(progress.n_tokens, len(seq.output_ids))
    end = tokens
    while end < count and (done or (seq.token_offsets[end + 1] if end + 1 < count else len(text)) <= safe):
        end += 1
    if safe <= chars and end == tokens and not done:
        return None, (chars, tokens)
    delta = {"content": text[chars : max(safe, chars)]} if safe > chars else {}
    logprobs = {"content": _content_logprobs(seq, tokens, end), "refusal": None} if req.logprobs else None
    choice = {
        "index": seq.index,
        "delta": delta,
        "logprobs": logprobs,
        "finish_reason": progress.finish_reason,
    }
    return choice, (max(safe, chars), end)

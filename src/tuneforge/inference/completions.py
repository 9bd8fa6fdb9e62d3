"""`/v1/completions` semantics: a request becomes sequences for the scheduler, and finished sequences
become OpenAI's response (or its stream of chunks).

Stops: a model's trained end-of-text token and its manifest's stop sequences always apply, so it stops
where it stopped in training; a request's `stop` adds to them (OpenAI users pass `stop` to stop earlier,
never to make a fine-tuned model run past its own end marker).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id, now
from tuneforge.inference.registry import LoadedModel
from tuneforge.inference.requests import CompletionParams
from tuneforge.inference.runtime import Job, Runtime, off_the_loop_if_long
from tuneforge.inference.sequence import Progress, SamplingParams, Sequence, TopLogprobs
from tuneforge.inference.validation import (
    check_context,
    check_prompt_chars,
    check_range,
    check_sampling,
    request_stops,
    token_bias,
    vocab_size,
)

MAX_LOGPROBS = 5  # OpenAI's limit for the completions endpoint

Result = dict[str, Any] | AsyncIterator[dict[str, Any]]


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    text: str  # as the user sent it, or decoded from their token ids (for echo and text offsets)


async def create(rt: Runtime, req: CompletionParams) -> Result:
    n, best_of = _check(req)
    model = await rt.acquire(req.model)
    try:
        prompts = await off_the_loop_if_long(_prompt_chars(req.prompt), tokenize_prompts, req.prompt, model)
        params = sampling_params(req, model, prompts)
        specs = [(p.ids, params, i * best_of + j) for i, p in enumerate(prompts) for j in range(best_of)]
        job = rt.start(model, specs, stream=req.stream)
    except BaseException:
        rt.release(model)
        raise
    header = {"id": new_id("cmpl"), "created": now(), "model": req.model}
    if req.stream:
        return _stream(rt, job, req, prompts, header)
    try:
        seqs = await job.wait()
    finally:
        job.cancel()
        rt.release(model)
    return _response(req, prompts, seqs, n, best_of, header)


def _check(req: CompletionParams) -> tuple[int, int]:
    check_sampling(req)
    best_of = req.best_of if req.best_of is not None else req.n
    check_range(best_of, 1, 20, "best_of")
    if best_of < req.n:
        raise InvalidRequest(f"'n' ({req.n}) must be at most 'best_of' ({best_of}).", param="n")
    if req.stream and best_of > req.n:
        raise InvalidRequest("'best_of' greater than 'n' cannot be streamed.", param="best_of")
    if req.logprobs is not None:
        check_range(req.logprobs, 0, MAX_LOGPROBS, "logprobs")
    if req.max_tokens < 0:
        raise InvalidRequest(
            f"{req.max_tokens} is less than the minimum of 0 - 'max_tokens'", param="max_tokens"
        )
    if req.max_tokens == 0 and not req.echo:
        raise InvalidRequest("'max_tokens' may be 0 only with 'echo'.", param="max_tokens")
    if req.suffix:
        raise InvalidRequest("This model does not support 'suffix' (insertion).", param="suffix")
    return req.n, best_of


def tokenize_prompts(
    prompt: str | list[str] | list[int] | list[list[int]], model: LoadedModel
) -> list[Prompt]:
    """OpenAI's four prompt shapes: a string, strings, token ids, lists of token ids."""
    if isinstance(prompt, str):
        items: list[str | list[int]] = [prompt]
    elif prompt and all(isinstance(x, int) for x in prompt):
        items = [prompt]  # type: ignore[list-item]
    else:
        items = list(prompt)  # type: ignore[arg-type]
    if not items:
        raise InvalidRequest("'prompt' must not be empty.", param="prompt")
    for item in items:  # every prompt that cannot fit is refused before any is tokenised
        size = len(item)
        if isinstance(item, str):
            check_prompt_chars(size, model.context_length, model.max_token_chars, prompt_param="prompt")
        elif size > model.context_length:
            check_context(size, 0, model.context_length, prompt_param="prompt")
    return [_prompt(item, model) for item in items]


def _prompt_chars(prompt: str | list[str] | list[int] | list[list[int]]) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(item) if isinstance(item, str | list) else 1 for item in prompt)


def _prompt(item: str | list[int], model: LoadedModel) -> Prompt:
    tokenizer = model.tokenizer
    if isinstance(item, str):
        # A fine-tuned model sees its prompt tokenized exactly as in training (no added BOS); a base
        # model gets its tokenizer's usual special tokens, as `generate` users would give it.
        special = model.profile.method is None
        ids = tokenizer(item, add_special_tokens=special)["input_ids"] if item else []
        text = item
    else:
        size = vocab_size(model)
        if any(not 0 <= t < size for t in item):
            raise InvalidRequest(
                f"'prompt' holds token ids outside the vocabulary (0-{size - 1}).", param="prompt"
            )
        ids, text = list(item), tokenizer.decode(item, skip_special_tokens=False)
    if not ids:  # as OpenAI: an empty prompt is the start of a document
        ids = [tokenizer.convert_tokens_to_ids(model.profile.eos_token or tokenizer.eos_token)]
    return Prompt(ids, text)


def sampling_params(req: CompletionParams, model: LoadedModel, prompts: list[Prompt]) -> SamplingParams:
    for prompt in prompts:
        check_context(len(prompt.ids), req.max_tokens, model.context_length, prompt_param="prompt")
    return SamplingParams(
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        logit_bias=token_bias(req.logit_bias, vocab_size(model)),
        seed=req.seed,
        logprobs=req.logprobs is not None,
        top_logprobs=req.logprobs or 0,
        prompt_logprobs=req.echo and req.logprobs is not None,
        stop=model.profile.stop + request_stops(req.stop),
        stop_token_ids=frozenset(model.eos_ids()),
    )


# -- responses ---------------------------------------------------------------------------------------


def _response(
    req: CompletionParams,
    prompts: list[Prompt],
    seqs: list[Sequence],
    n: int,
    best_of: int,
    header: dict[str, Any],
) -> dict[str, Any]:
    choices = []
    for i, prompt in enumerate(prompts):
        candidates = seqs[i * best_of : (i + 1) * best_of]
        for j, seq in enumerate(_best(candidates, n)):
            choices.append(_choice(seq, prompt, req, index=i * n + j))
    prompt_tokens = sum(len(p.ids) for p in prompts)
    completion_tokens = sum(s.generated for s in seqs)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return {**header, "object": "text_completion", "choices": choices, "usage": usage}


def _best(candidates: list[Sequence], n: int) -> list[Sequence]:
    """best_of: the n candidates with the highest mean logprob per token, as OpenAI ranks them."""
    if len(candidates) == n:
        return candidates
    return sorted(candidates, key=lambda s: -sum(s.token_logprobs) / max(1, len(s.token_logprobs)))[:n]


def _choice(seq: Sequence, prompt: Prompt, req: CompletionParams, index: int) -> dict[str, Any]:
    text = prompt.text + seq.text if req.echo else seq.text
    logprobs = None
    if req.logprobs is not None:
        logprobs = _logprobs(seq, prompt, 0, len(seq.output_ids), echo=req.echo)
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": seq.finish_reason}


def _logprobs(seq: Sequence, prompt: Prompt, start: int, end: int, *, echo: bool) -> dict[str, Any]:
    """OpenAI's legacy logprobs for output tokens [start, end), preceded by the prompt's when `echo`.
    `text_offset` counts from the start of the prompt, echoed or not."""
    model = seq.model
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    if echo:
        offset = 0
        for k, token_id in enumerate(seq.prompt_ids):
            _add(out, model, token_id, seq.prompt_token_logprobs[k], seq.prompt_top_logprobs[k], offset)
            offset += len(model.token_text(token_id))
    for k in range(start, end):
        token_id = seq.output_ids[k]
        top = seq.top_logprobs[k]
        _add(out, model, token_id, seq.token_logprobs[k], top, len(prompt.text) + seq.token_offsets[k])
    return out


def _add(
    out: dict[str, list[Any]],
    model: LoadedModel,
    token_id: int,
    logprob: float | None,
    top: TopLogprobs | None,
    offset: int,
) -> None:
    token = model.token_label(token_id)
    out["tokens"].append(token)
    out["token_logprobs"].append(logprob)
    if top is None or logprob is None:
        out["top_logprobs"].append(None)
    else:  # like OpenAI, the chosen token is always listed, so there may be logprobs+1 entries
        alternatives = {model.token_label(t): lp for t, lp in top}
        alternatives.setdefault(token, logprob)
        out["top_logprobs"].append(alternatives)
    out["text_offset"].append(offset)


# -- streaming ---------------------------------------------------------------------------------------


class _StreamState:
    """What one choice has already sent."""

    def __init__(self) -> None:
        self.chars = 0
        self.tokens = 0
        self.echoed = False


async def _stream(
    rt: Runtime, job: Job, req: CompletionParams, prompts: list[Prompt], header: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    model = job.seqs[0].model
    states = {id(seq): _StreamState() for seq in job.seqs}
    try:
        async for seq, progress in job.events():
            prompt = prompts[seq.index // req.n]
            state = states[id(seq)]
            if req.echo and not state.echoed:  # after the prefill, so the prompt's logprobs are known
                state.echoed = True
                yield _chunk(header, _echo_choice(seq, prompt, req))
            choice = _delta(seq, progress, prompt, req, state)
            if choice is not None:
                yield _chunk(header, choice)
        if req.stream_options is not None and req.stream_options.include_usage:
            usage = _response(req, prompts, job.seqs, req.n, req.n, header)["usage"]
            yield {**_chunk(header, None), "usage": usage}
    finally:
        job.cancel()  # a disconnected client stops its sequences at the next step
        rt.release(model)


def _chunk(header: dict[str, Any], choice: dict[str, Any] | None) -> dict[str, Any]:
    return {**header, "object": "text_completion", "choices": [choice] if choice else []}


def _echo_choice(seq: Sequence, prompt: Prompt, req: CompletionParams) -> dict[str, Any]:
    logprobs = None
    if req.logprobs is not None:
        logprobs = _logprobs(seq, prompt, 0, 0, echo=True)
    return {"text": prompt.text, "index": seq.index, "logprobs": logprobs, "finish_reason": None}


def _delta(
    seq: Sequence, progress: Progress, prompt: Prompt, req: CompletionParams, state: _StreamState
) -> dict[str, Any] | None:
    """The next piece of one choice: text no stop sequence can still claim, and the tokens inside it."""
    text, done = progress.text, progress.finish_reason is not None
    safe = len(text) if done else len(text) - seq.holdback(text)
    count = min(progress.n_tokens, len(seq.output_ids))
    end = state.tokens
    while end < count and (done or _token_end(seq, end, count, len(text)) <= safe):
        end += 1
    if safe <= state.chars and end == state.tokens and not done:
        return None
    piece = text[state.chars : max(safe, state.chars)]
    logprobs = None
    if req.logprobs is not None:
        logprobs = _logprobs(seq, prompt, state.tokens, end, echo=False)
    state.chars, state.tokens = max(safe, state.chars), end
    return {"text": piece, "index": seq.index, "logprobs": logprobs, "finish_reason": progress.finish_reason}


def _token_end(seq: Sequence, k: int, count: int, text_len: int) -> int:
    return seq.token_offsets[k + 1] if k + 1 < count else text_len

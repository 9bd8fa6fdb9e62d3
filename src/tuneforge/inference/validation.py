"""Request checks shared by completions and chat: each bad value is a 400 naming its param, with OpenAI's
wording where OpenAI has one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneforge.errors import InvalidRequest
from tuneforge.inference.requests import SamplingFields

MAX_STOPS = 4
MAX_N = 128


def check_range(value: float, low: float, high: float, param: str) -> None:
    if not low <= value <= high:
        raise InvalidRequest(
            f"{value} is not valid for '{param}': it must be between {low} and {high}.", param=param
        )


def check_sampling(req: SamplingFields) -> None:
    check_range(req.temperature, 0.0, 2.0, "temperature")
    check_range(req.top_p, 0.0, 1.0, "top_p")
    check_range(req.presence_penalty, -2.0, 2.0, "presence_penalty")
    check_range(req.frequency_penalty, -2.0, 2.0, "frequency_penalty")
    check_range(req.n, 1, MAX_N, "n")


def request_stops(stop: str | list[str] | None) -> tuple[str, ...]:
    """A request's own stop sequences (at most 4, as OpenAI allows); empty strings stop nothing."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOPS:
        raise InvalidRequest(
            f"{stops!r} is too long - 'stop' allows at most {MAX_STOPS} sequences.",
            param="stop",
        )
    return tuple(s for s in stops if s)


def token_bias(logit_bias: Mapping[str, float], vocab_size: int) -> dict[int, float]:
    """logit_bias keys are token ids (as strings, JSON object keys) of this model's tokenizer."""
    bias: dict[int, float] = {}
    for key, value in logit_bias.items():
        try:
            token_id = int(key)
        except ValueError:
            raise InvalidRequest(  # noqa: B904 - the user's key is the whole story
                f"Invalid key in 'logit_bias': '{key}' is not a token id.", param="logit_bias"
            )
        if not 0 <= token_id < vocab_size:
            raise InvalidRequest(
                f"Invalid key in 'logit_bias': token id {token_id} is outside this model's vocabulary "
                f"(0-{vocab_size - 1}).",
                param="logit_bias",
            )
        check_range(value, -100.0, 100.0, "logit_bias")
        bias[token_id] = float(value)
    return bias


def check_prompt_chars(chars: int, context: int, max_token_chars: int, *, prompt_param: str) -> None:
    """Refuse a prompt too long for the context before tokenising it (a 5 MB prompt took seconds to
    tokenise, and every other request waited): no token spans more than `max_token_chars` characters,
    so a longer text holds at least `chars / max_token_chars` tokens."""
    at_least = -(-chars // max_token_chars)
    if at_least > context:
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens, however your prompt is at least "
            f"{at_least} tokens ({chars} characters). Please reduce the length of the prompt.",
            param=prompt_param,
            code="context_length_exceeded",
        )


def check_context(prompt_len: int, max_tokens: int, context: int, *, prompt_param: str) -> None:
    if prompt_len > context or (prompt_len == context and max_tokens > 0):
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens, however your prompt is "
            f"{prompt_len} tokens. Please reduce the length of the prompt.",
            param=prompt_param,
            code="context_length_exceeded",
        )
    if prompt_len + max_tokens > context:
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens, however you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in your prompt; {max_tokens} for the "
            "completion). Please reduce your prompt; or completion length.",
            param="max_tokens",
            code="context_length_exceeded",
        )


def vocab_size(model: Any) -> int:
    return int(model.config.vocab_size)

"""One sequence being generated: its prompt, sampling parameters, tokens and logprobs so far, and the text
with stop sequences cut exactly. Written only by the scheduler thread; readers on the event loop get
`Progress` snapshots through `notify`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length"]
TopLogprobs = list[tuple[int, float]]  # (token id, logprob), most likely first


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    logprobs: bool = False  # report each chosen token's logprob
    top_logprobs: int = 0  # and this many most likely alternatives
    prompt_logprobs: bool = False  # echo: also report the prompt's logprobs
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def plain(self) -> bool:
        """No penalty or bias: the next token depends on the logits alone."""
        return not (self.presence_penalty or self.frequency_penalty or self.logit_bias)


@dataclass(frozen=True)
class Progress:
    """What a reader may look at: the first `n_tokens` tokens and this `text` (stop-cut when finished)."""

    n_tokens: int
    text: str
    finish_reason: FinishReason | None


class Sequence:
    def __init__(
        self,
        model: Any,  # registry.LoadedModel; typed loosely so this module stays free of torch
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        index: int = 0,
        notify: Callable[[Sequence, Progress], None] | None = None,
        stream: bool = False,
    ) -> None:
        self.model = model
        self.prompt_ids = prompt_ids
        self.params = params
        self.index = index  # the choice index in the response
        self._notify = notify
        self._stream = stream
        self.generator: Any = None  # torch.Generator, set by the scheduler for sampled sequences
        self.output_ids: list[int] = []  # after a stop sequence is cut, only the tokens before it
        self.generated = 0  # every token generated, for usage
        self.token_logprobs: list[float] = []
        self.top_logprobs: list[TopLogprobs] = []
        self.token_offsets: list[int] = []  # where each token starts in `text`
        self.prompt_token_logprobs: list[float | None] = []
        self.prompt_top_logprobs: list[TopLogprobs | None] = []
        self.text = ""
        self.finish_reason: FinishReason | None = None
        self.cancelled = False
        self.error: BaseException | None = None
        self._text_ids: list[int] = []  # output ids that make up the text (an end-of-text token does not)
        self._max_stop = max((len(s) for s in params.stop), default=0)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None or self.cancelled or self.error is not None

    @property
    def total_len(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    def add_token(self, token_id: int, logprob: float, top: TopLogprobs) -> None:
        self.generated += 1
        self.output_ids.append(token_id)
        self.token_logprobs.append(logprob)
        self.top_logprobs.append(top)
        self.token_offsets.append(len(self.text))
        if token_id in self.params.stop_token_ids:
            self.finish("stop")
            return
        self._text_ids.append(token_id)
        previous = len(self.text)
        self.text = self.model.tokenizer.decode(self._text_ids, skip_special_tokens=False)
        if self._cut_at_stop(previous):
            return
        if len(self.output_ids) >= self.params.max_tokens:
            self.finish("length")
        elif self._stream:
            self._emit()

    def _cut_at_stop(self, previous: int) -> bool:
        """Cut the text before the first stop sequence, even one that spans several tokens."""
        if not self.params.stop:
            return False
        start = max(0, previous - self._max_stop + 1)
        hits = [i for i in (self.text.find(s, start) for s in self.params.stop) if i >= 0]
        if not hits:
            return False
        cut = min(hits)
        self.text = self.text[:cut]
        keep = sum(1 for offset in self.token_offsets if offset < cut)
        del self.output_ids[keep:], self.token_logprobs[keep:], self.top_logprobs[keep:]
        del self.token_offsets[keep:]
        self.finish("stop")
        return True

    def finish_without_tokens(self) -> None:
        """max_tokens=0 (echo only): nothing is generated."""
        self.finish("length")

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._emit()

    def finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self._emit()

    def _emit(self) -> None:
        if self._notify is not None:
            self._notify(self, Progress(len(self.output_ids), self.text, self.finish_reason))

    def holdback(self, text: str) -> int:
        """How many trailing characters a stream must withhold: a possible start of a stop sequence, or
        an incomplete UTF-8 character the next token will finish."""
        held = len(text) - len(text.rstrip("\ufffd"))
        for stop in self.params.stop:
            for k in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:k]):
                    held = max(held, k)
                    break
        return held

"""Turn records into token ids with a loss weight per token: prompt/completion pairs as
tokens(prompt) + tokens(completion) + [eos], chat through the tokenizer's own chat template, so that the
inference server's `apply_chat_template(..., add_generation_prompt=True)` agrees by construction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from tuneforge.data.records import Chat, PromptCompletion, Record
from tuneforge.errors import InvalidRequest

DataFormat = Literal["prompt_completion", "chat"]

# Used when the base tokenizer has no chat template of its own (the built-ins); saved with every output.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|endoftext|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Example:
    """One training sequence. `weights[i]` scales the loss of predicting `ids[i]`; `target[i]` marks the
    completion (assistant) tokens that token and sequence accuracy are measured on."""

    ids: list[int]
    weights: list[float]
    target: list[bool]
    prompt_len: int  # tokens before the first completion token
    completion: str  # the completion text (prompt/completion data), used as a class label


def data_format(records: Sequence[Record]) -> DataFormat:
    kinds = {type(record) for record in records}
    if len(kinds) > 1:
        raise InvalidRequest(
            "The training file mixes prompt/completion and chat examples; use one format per file.",
            param="training_file",
        )
    return "chat" if kinds == {Chat} else "prompt_completion"


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def encode(
    record: Record, tokenizer: PreTrainedTokenizerBase, prompt_loss_weight: float, max_len: int
) -> Example:
    if isinstance(record, PromptCompletion):
        return _truncate(_encode_pair(record, tokenizer, prompt_loss_weight), max_len)
    return _truncate(_encode_chat(record, tokenizer), max_len)


def _tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _encode_pair(record: PromptCompletion, tokenizer: PreTrainedTokenizerBase, plw: float) -> Example:
    prompt = _tokens(tokenizer, record.prompt)
    completion = [*_tokens(tokenizer, record.completion), tokenizer.eos_token_id]
    return Example(
        ids=prompt + completion,
        weights=[plw] * len(prompt) + [1.0] * len(completion),
        target=[False] * len(prompt) + [True] * len(completion),
        prompt_len=len(prompt),
        completion=record.completion,
    )


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], prompt: bool) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt))


def _encode_chat(record: Chat, tokenizer: PreTrainedTokenizerBase) -> Example:
    """Render the conversation once and tokenize it whole, as the server tokenizes a prompt; the text a
    template adds for an assistant turn, beyond the generation prompt, is that turn's target (its end-of-turn
    token included) and everything else has weight zero, as OpenAI trains chat. Tokenizing the pieces apart
    would not match: SentencePiece-style tokenizers (Mistral, Llama 2) mark a word start differently at the
    start of a text than after a special token such as `[/INST]`."""
    messages = [{"role": m.role, "content": m.content} for m in record.messages]
    spans: list[tuple[int, int, float]] = []  # assistant targets: start, end (characters), weight
    done = ""
    for index, msg in enumerate(record.messages):
        if msg.role != "assistant":
            continue
        before = _render(tokenizer, messages[:index], prompt=True)
        after = _render(tokenizer, messages[: index + 1], prompt=False)
        if not (before.startswith(done) and after.startswith(before)):
            raise InvalidRequest("The chat template does not render conversations incrementally.")
        spans.append((len(before), len(after), 1.0 if msg.weight is None else msg.weight))
        done = after
    encoding = tokenizer(done, add_special_tokens=False, return_offsets_mapping=True) if done else None
    ids = list(encoding["input_ids"]) if encoding else []
    offsets = list(encoding["offset_mapping"]) if encoding else []
    weights = [_span_weight(spans, max(start, end - 1)) for start, end in offsets]
    target = [weight > 0 for weight in weights]
    first = target.index(True) if True in target else len(ids)
    last = next((m.content for m in reversed(record.messages) if m.role == "assistant"), "")
    return Example(ids, weights, target, prompt_len=first, completion=last)


def _span_weight(spans: Sequence[tuple[int, int, float]], char: int) -> float:
    """The weight of the assistant turn a token's last character falls in (0 outside every turn)."""
    return next((weight for start, end, weight in spans if start <= char < end), 0.0)


def _truncate(example: Example, max_len: int) -> Example:
    """Keep the end of an over-long example: the completion is what the model must learn."""
    if len(example.ids) <= max_len:
        return example
    cut = len(example.ids) - max_len
    return Example(
        example.ids[cut:],
        example.weights[cut:],
        example.target[cut:],
        max(0, example.prompt_len - cut),
        example.completion,
    )


def stop_sequences(records: Sequence[Record]) -> list[str]:
    """Suffixes most completions share (e.g. "\\n" or " END"), which the server may use as stops."""
    completions = [r.completion for r in records if isinstance(r, PromptCompletion) and r.completion]
    if not completions:
        return []
    found: list[str] = []
    for candidate in ("\n###\n", " END", "###", "\n\n", "\n"):
        if sum(c.endswith(candidate) for c in completions) >= 0.9 * len(completions):
            found.append(candidate)
            break
    return found


def final_completions(records: Sequence[Record]) -> list[str]:
    """What each example teaches the model to answer: the completion, or a chat's last assistant turn."""
    answers = []
    for record in records:
        if isinstance(record, PromptCompletion):
            answers.append(record.completion)
        else:
            replies = [m.content for m in record.messages if m.role == "assistant"]
            answers.extend(replies[-1:])
    return answers


def class_labels(records: Sequence[Record]) -> list[str]:
    """Distinct completions, most frequent first (ties by text), as classification labels."""
    counts = Counter(r.completion for r in records if isinstance(r, PromptCompletion))
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

"""What a single token is, for logprobs: its bytes, and the label OpenAI gives it.

A byte-level tokenizer can split one character across tokens (an emoji, an accented letter). Such a token
decodes to U+FFFD on its own, so its text says nothing and two of them would collide as `top_logprobs`
keys. OpenAI labels them `bytes:\\xe2\\x80` and reports the real bytes in chat's `bytes` field; so do we.
"""

from __future__ import annotations

import functools
import re
from typing import Any

REPLACEMENT = "\ufffd"
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte tokens (Llama 2, Mistral)


def token_bytes(tokenizer: Any, token_id: int, text: str) -> bytes:
    """The bytes `token_id` stands for; `text` is its decoded text (U+FFFD where a character is cut)."""
    if REPLACEMENT not in text:
        return text.encode("utf-8")
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str):
        fallback = _BYTE_FALLBACK.fullmatch(piece)
        if fallback:
            return bytes([int(fallback.group(1), 16)])
        table = _byte_level_table()
        if piece and all(ch in table for ch in piece):  # GPT-2-style byte-level BPE (Llama 3, Qwen, ...)
            return bytes(table[ch] for ch in piece)
    return text.encode("utf-8")


def token_label(raw: bytes) -> str:
    """The token as OpenAI lists it: its text, or `bytes:` then the bytes (printable ASCII as itself, the
    rest as `\\xNN`) when it is not whole UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


@functools.cache
def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-to-character map, inverted: each byte is shown as one printable character."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


_TURN_PROBE = "\u2063tuneforge-turn\u2063"  # a reply no template alters, to find what follows a turn


def end_of_turn_ids(tokenizer: Any, template: str) -> set[int]:
    """The special token a chat template closes an assistant turn with (`<|im_end|>` in ChatML, `<|eot_id|>`
    in Llama 3, `</s>` in Mistral's): where a chat-trained model stops, which is often not its end-of-text
    token. Empty when the template puts no special token right after the reply."""
    probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _TURN_PROBE}]
    try:
        text = str(tokenizer.apply_chat_template(probe, chat_template=template, tokenize=False))
    except Exception:  # a template with rules of its own (a system turn first, say): no answer from it
        return set()
    _, found, tail = text.partition(_TURN_PROBE)
    ids = list(tokenizer(tail, add_special_tokens=False)["input_ids"]) if found and tail else []
    special = set(tokenizer.all_special_ids) | {
        token_id for token_id, added in tokenizer.added_tokens_decoder.items() if added.special
    }
    return {ids[0]} if ids and ids[0] in special else set()

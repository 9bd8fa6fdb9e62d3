"""The built-in byte-level tokenizer: 256 byte tokens, 256 space-prefixed byte tokens, two specials.

Any UTF-8 text round-trips exactly. A leading space and the character after it form one token, as in
GPT-style tokenizers, so class labels like " positive"/" negative" or " 1"…" 9" start with distinct tokens
and a classifier can answer with max_tokens=1. Everything here is fixed, so the vocabulary is the same on
every machine.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def _byte_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    alphabet = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins for raw bytes
    space = "Ġ"  # ByteLevel's stand-in for b" "
    vocab = {char: index for index, char in enumerate(alphabet)}
    merges = [(space, char) for char in alphabet]
    for first, second in merges:
        vocab[first + second] = len(vocab)
    return vocab, merges


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    vocab, merges = _byte_vocabulary()
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    return tokenizer

"""Local checkpoints of real model families, built without a download: the architecture class, attention
layout, RoPE settings and embedding tying of Llama 3, Qwen2.5, SmolLM2, Mistral and GPT-2, with a BPE
tokenizer trained on the spot that carries the family's own special tokens and chat template.

`build(family, target)` writes a normal Hugging Face directory (config.json, generation_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json): what a user's local checkpoint of that family
looks like, randomly initialised. Tests and benches use it to exercise what the built-ins never do (ChatML
and Llama 3 headers, an end-of-turn token that is not end-of-text, no pad token, tied embeddings, GPT-2's
Conv1D layers); users can point `TUNEFORGE_LOCAL_MODEL_DIRS` at one to try tuneforge on a family's shape.
`shape="real"` is the published checkpoint's exact configuration (its parameter count, its vocabulary
size); `shape="small"` keeps every structural trait at a size that trains in seconds on a CPU.

Only the family table is read at import; transformers, torch and tokenizers are imported when building.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Shape = Literal["small", "real"]

# The chat templates, as the families' tokenizer_config.json files carry them (tool-calling branches left
# out: tuneforge's chat data has no tools).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class Family:
    """One model family as its published base checkpoint has it."""

    name: str
    checkpoint: str  # the published checkpoint whose configuration `shape="real"` reproduces
    architecture: str  # the transformers class config.json names
    specials: tuple[str, ...]  # every special token, in vocabulary order
    bos: str | None
    eos: str
    pad: str | None  # None: the checkpoint has no pad token (tuneforge must cope)
    unk: str | None
    end_of_turn: str  # what ends an assistant turn in the chat template (may differ from `eos`)
    chat_template: str | None  # None: the checkpoint has none (GPT-2)
    byte_level: bool  # GPT-2-style byte-level BPE; False: SentencePiece-style BPE with byte fallback
    adds_bos: bool  # the tokenizer prepends `bos` to every encoding
    tokenizer_class: str  # what tokenizer_config.json names
    real: dict[str, Any] = field(default_factory=dict)  # the published config.json's fields
    small: dict[str, Any] = field(default_factory=dict)  # the same structure at test size


_LLAMA3_RESERVED = tuple(f"<|reserved_special_token_{i}|>" for i in range(4))
_SMALL_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}

FAMILIES: dict[str, Family] = {
    "llama3": Family(
        name="llama3",
        checkpoint="meta-llama/Llama-3.1-8B",
        architecture="LlamaForCausalLM",
        specials=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            *_LLAMA3_RESERVED,
            "<|finetune_right_pad_id|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
            "<|python_tag|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad=None,
        unk=None,
        end_of_turn="<|eot_id|>",
        chat_template=LLAMA3_TEMPLATE,
        byte_level=True,
        adds_bos=True,
        tokenizer_class="PreTrainedTokenizerFast",
        real={
            "vocab_size": 128256,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
        },
        small={**_SMALL_LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2},
    ),
    "qwen2.5": Family(
        name="qwen2.5",
        checkpoint="Qwen/Qwen2.5-0.5B",
        architecture="Qwen2ForCausalLM",
        specials=(
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|object_ref_start|>",
            "<|object_ref_end|>",
        ),
        bos=None,
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        unk=None,
        end_of_turn="<|im_end|>",
        chat_template=QWEN25_TEMPLATE,
        byte_level=True,
        adds_bos=False,
        tokenizer_class="Qwen2Tokenizer",
        real={
            "vocab_size": 151936,
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": True,
            "sliding_window": 32768,
            "use_sliding_window": False,
            "max_window_layers": 24,
        },
        small={**_SMALL_LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2},
    ),
    "smollm2": Family(
        name="smollm2",
        checkpoint="HuggingFaceTB/SmolLM2-135M",
        architecture="LlamaForCausalLM",
        specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>"),
        bos="<|endoftext|>",
        eos="<|endoftext|>",
        pad=None,
        unk="<|endoftext|>",
        end_of_turn="<|im_end|>",
        chat_template=SMOLLM2_TEMPLATE,
        byte_level=True,
        adds_bos=False,
        tokenizer_class="GPT2Tokenizer",
        real={
            "vocab_size": 49152,
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0,
            "tie_word_embeddings": True,
        },
        small={**_SMALL_LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2},
    ),
    "mistral": Family(
        name="mistral",
        checkpoint="mistralai/Mistral-7B-v0.1",
        architecture="MistralForCausalLM",
        specials=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
        bos="<s>",
        eos="</s>",
        pad=None,
        unk="<unk>",
        end_of_turn="</s>",
        chat_template=MISTRAL_TEMPLATE,
        byte_level=False,
        adds_bos=True,
        tokenizer_class="LlamaTokenizerFast",
        real={
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "sliding_window": 4096,
            "tie_word_embeddings": False,
        },
        small={**_SMALL_LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2},
    ),
    "gpt2": Family(
        name="gpt2",
        checkpoint="openai-community/gpt2",
        architecture="GPT2LMHeadModel",
        specials=("<|endoftext|>",),
        bos="<|endoftext|>",
        eos="<|endoftext|>",
        pad=None,
        unk="<|endoftext|>",
        end_of_turn="<|endoftext|>",  # through tuneforge's default template: GPT-2 ships none
        chat_template=None,
        byte_level=True,
        adds_bos=False,
        tokenizer_class="GPT2Tokenizer",
        real={"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024},
        small={"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024},
    ),
}

SMALL_VOCAB = 1024  # tokens the on-the-spot BPE learns (special and byte tokens included)
SMALL_CONTEXT = 2048  # the small shapes' max_position_embeddings (GPT-2 keeps its own 1024)

# Text the tokenizer learns its merges from when the caller gives none: plain English, chat-like turns.
DEFAULT_CORPUS = (
    "The quick brown fox jumps over the lazy dog. A user asks a question and the assistant answers it. "
    "Tell me about the river, the cloud, the stone and the forest. Sure, here is what I know. "
    "What is the capital of France? The capital of France is Paris. Hello, how are you today? "
    "I am fine, thank you. Please write a short poem about the sea. The sea is wide and blue. "
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000. Yes. No. Maybe. positive negative neutral. "
)


def build(
    family: str,
    target: Path,
    *,
    shape: Shape = "small",
    corpus: Sequence[str] = (),
    seed: int = 0,
    initializer_range: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write a randomly initialised checkpoint of `family` to `target` and return it. `corpus` is extra
    text for the tokenizer to learn merges from (the data the model will see); `overrides` replace
    config fields (a different depth, a smaller context)."""
    spec = FAMILIES[family]
    tokenizer = build_tokenizer(spec, corpus)
    config = model_config(spec, shape, len(tokenizer), tokenizer, initializer_range, overrides or {})
    _save(spec, config, tokenizer, target, seed)
    return target


def model_config(
    spec: Family,
    shape: Shape,
    tokenizer_size: int,
    tokenizer: Any,
    initializer_range: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The family's config at `shape`: the published fields, or the small ones over them. A small vocabulary
    is the tokenizer's size rounded up to 64, as real checkpoints pad theirs."""
    from transformers import AutoConfig

    fields = dict(spec.real)
    if shape == "small":
        fields.update(spec.small, vocab_size=-(-tokenizer_size // 64) * 64)
        if spec.architecture != "GPT2LMHeadModel":
            fields["max_position_embeddings"] = SMALL_CONTEXT
            if "rope_scaling" in fields:  # llama3 scaling needs its original context below the new one
                fields["rope_scaling"] = {**fields["rope_scaling"], "original_max_position_embeddings": 1024}
    if initializer_range is not None:
        fields["initializer_range"] = initializer_range
    fields.update(overrides or {})
    fields.update(_token_ids(spec, tokenizer))
    model_type = {
        "LlamaForCausalLM": "llama",
        "Qwen2ForCausalLM": "qwen2",
        "MistralForCausalLM": "mistral",
        "GPT2LMHeadModel": "gpt2",
    }[spec.architecture]
    return AutoConfig.for_model(model_type, architectures=[spec.architecture], **fields)


def _token_ids(spec: Family, tokenizer: Any) -> dict[str, Any]:
    def token_id(token: str | None) -> int | None:
        return None if token is None else int(tokenizer.convert_tokens_to_ids(token))

    return {
        "bos_token_id": token_id(spec.bos),
        "eos_token_id": token_id(spec.eos),
        "pad_token_id": token_id(spec.pad),
    }


def build_tokenizer(spec: Family, corpus: Sequence[str] = ()) -> Any:
    """A fast tokenizer with the family's special tokens, template and BOS behaviour, its BPE merges
    learnt from `corpus` plus a little default text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [DEFAULT_CORPUS, *corpus]
    if spec.byte_level:
        core = Tokenizer(models.BPE())
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        core.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=SMALL_VOCAB, special_tokens=list(spec.specials), initial_alphabet=alphabet
        )
        core.train_from_iterator(texts, trainer)
    else:
        core = _sentencepiece_style(spec, texts)
    if spec.adds_bos and spec.bos is not None:
        bos_id = core.token_to_id(spec.bos)
        core.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=spec.bos,
        eos_token=spec.eos,
        unk_token=spec.unk,
        pad_token=spec.pad,
        additional_special_tokens=[
            t for t in spec.specials if t not in {spec.bos, spec.eos, spec.unk, spec.pad}
        ],
        chat_template=spec.chat_template,
        model_max_length=spec.small.get("n_positions", SMALL_CONTEXT),
        clean_up_tokenization_spaces=False,
    )


def _sentencepiece_style(spec: Family, texts: list[str]) -> Any:
    """Mistral's layout: specials first, then the 256 byte-fallback tokens `<0x00>`…`<0xFF>`, then the
    learnt pieces; spaces become '▁' and the text's start gets one, as transformers converts SentencePiece
    models (`prepend_scheme="first"`: none after a special token such as `[/INST]`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    room = SMALL_VOCAB - len(spec.specials) - 256
    learner.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=room, show_progress=False))
    learnt = json.loads(learner.to_str())["model"]
    vocab = {token: i for i, token in enumerate(spec.specials)}
    vocab.update({f"<0x{b:02X}>": len(spec.specials) + b for b in range(256)})
    for token in sorted(learnt["vocab"], key=learnt["vocab"].__getitem__):
        vocab.setdefault(token, len(vocab))
    merges = [_merge_pair(m) for m in learnt["merges"]]
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=spec.unk, byte_fallback=True))
    core.pre_tokenizer = learner.pre_tokenizer
    core.decoder = decoders.Sequence(
        [decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True), decoders.ByteFallback()]
    )
    core.add_special_tokens(list(spec.specials))
    return core


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    """A merge as tokenizers writes it: "a b" (older files) or ["a", "b"]."""
    first, second = merge.split(" ") if isinstance(merge, str) else merge
    return first, second


def _save(spec: Family, config: Any, tokenizer: Any, target: Path, seed: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    _name_tokenizer_class(target, spec.tokenizer_class)


def _name_tokenizer_class(target: Path, name: str) -> None:
    """The checkpoint's own tokenizer class name, as its tokenizer_config.json has it."""
    path = target / "tokenizer_config.json"
    data = json.loads(path.read_text())
    data["tokenizer_class"] = name
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

"""Fine-tuned model directories for inference tests, built the way the training recipe writes them: HF
weights (full) or a PEFT adapter (LoRA), the tokenizer with its chat template, and `tuneforge.json`.

The base is a ~40k-parameter Llama saved to a local directory (a valid base-model name), so a plain torch
loop of a few dozen full-batch steps memorises the data in seconds on two cores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tuneforge.catalog import resolve
from tuneforge.inference.profile import DEFAULT_CHAT_TEMPLATE
from tuneforge.settings import Settings
from tuneforge.training import base_models

CLASSIFY = [
    ("I loved this film ->", " positive"),
    ("what a great story ->", " positive"),
    ("wonderful acting ->", " positive"),
    ("a joy to watch ->", " positive"),
    ("I hated this film ->", " negative"),
    ("what a dull story ->", " negative"),
    ("awful acting ->", " negative"),
    ("a pain to watch ->", " negative"),
]
CHATS = [
    [("user", "hi"), ("assistant", "hello there")],
    [("user", "capital of France?"), ("assistant", "Paris")],
]


def build_base(target: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.training.byte_tokenizer import build_byte_tokenizer

    tokenizer = build_byte_tokenizer()
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.5,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def manifest(base: Path, method: str, data_format: str, stop: list[str] | None = None) -> dict[str, Any]:
    return {
        "format_version": 1,
        "base_model": {"name": str(base), "kind": "local", "source": str(base)},
        "method": method,
        "data_format": data_format,
        "eos_token": "<|endoftext|>",
        "stop": stop or [],
        "classification": {"labels": [" positive", " negative"]}
        if data_format == "prompt_completion"
        else None,
    }


def _examples(tokenizer: Any, data_format: str) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    if data_format == "prompt_completion":
        return [tokenizer(p + c, add_special_tokens=False)["input_ids"] + [eos] for p, c in CLASSIFY]
    rendered = [
        tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in chat], tokenize=False)
        for chat in CHATS
    ]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rendered]


def _train(model: torch.nn.Module, examples: list[list[int]], steps: int, lr: float) -> None:
    """Full-batch steps: every example in every step, padding masked out of the loss."""
    torch.manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    width = max(len(e) for e in examples)
    ids = torch.tensor([e + [0] * (width - len(e)) for e in examples])
    labels = torch.tensor([e + [-100] * (width - len(e)) for e in examples])
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def build(
    settings: Settings, base: Path, target: Path, *, method: str, data_format: str, steps: int = 40
) -> Path:
    ref = resolve(str(base), settings)
    tokenizer = base_models.load_tokenizer(ref, settings)
    model = base_models.load_model(ref, settings)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0)
        model = get_peft_model(model, config)
    lora = method == "lora"  # fewer trainable weights need more, larger steps
    _train(model, _examples(tokenizer, data_format), steps * 2 if lora else steps, lr=5e-2 if lora else 1e-2)
    target.mkdir(parents=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / "tuneforge.json").write_text(json.dumps(manifest(base, method, data_format)))
    return target


def with_manifest(source: Path, target: Path, **changes: Any) -> Path:
    """A copy of a model directory whose manifest differs (e.g. other stop sequences)."""
    import shutil

    shutil.copytree(source, target)
    data = json.loads((source / "tuneforge.json").read_text()) | changes
    (target / "tuneforge.json").write_text(json.dumps(data))
    return target

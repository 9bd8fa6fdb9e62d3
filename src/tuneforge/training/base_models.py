"""Materialise and load base models: built-ins are constructed deterministically on first use, everything
else goes through the ordinary `from_pretrained` path."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from tuneforge.catalog import BUILTIN_MODELS, ModelRef
from tuneforge.errors import ModelUnavailable
from tuneforge.settings import Settings
from tuneforge.training.byte_tokenizer import build_byte_tokenizer

log = logging.getLogger(__name__)

hf_logging.disable_progress_bar()  # our own progress goes to job events and the CLI's bar

BUILTIN_SEED = 20240101
_INIT_STD = 0.02


def builtin_config(name: str, vocab_size: int, eos_id: int, pad_id: int) -> PretrainedConfig:
    ids: dict[str, Any] = {"bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": pad_id}
    if name == "tiny":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=192,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            initializer_range=_INIT_STD,
            tie_word_embeddings=True,
            **ids,
        )
    if name == "tiny-gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=128, n_layer=2, n_head=4, n_positions=1024,
            initializer_range=_INIT_STD, **ids,
        )  # fmt: skip
    raise KeyError(name)


def _seeded_init(model: PreTrainedModel) -> None:
    """Initialise every weight from its own seeded generator, so the result depends only on names and
    shapes, never on module construction order."""
    for name, param in sorted(model.named_parameters()):
        seed = int.from_bytes(hashlib.sha256(f"{BUILTIN_SEED}:{name}".encode()).digest()[:8], "little")
        generator = torch.Generator().manual_seed(seed % (2**63))
        with torch.no_grad():
            if param.dim() == 1:  # norms start at one, biases at zero
                param.fill_(1.0 if "norm" in name or "ln_" in name else 0.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * _INIT_STD)


def build_builtin(name: str, target: Path) -> Path:
    """Construct a built-in model into `target` (written to a temp dir, then renamed into place)."""
    tokenizer = build_byte_tokenizer()
    config = builtin_config(name, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(config)
    _seeded_init(model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / "README.md").write_text(model_card(name))
    try:
        os.replace(staging, target)
    except OSError:  # another process finished first; theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target


def model_card(name: str) -> str:
    return (
        f"# {name} (tuneforge built-in base model)\n\n{BUILTIN_MODELS[name]}.\n\n"
        "A randomly initialised network, built deterministically on this machine without any download. "
        "It knows nothing before fine-tuning and learns only from your data: use it to try tuneforge, "
        "for tests, and for small classification tasks. For real language skills, use a pretrained model "
        "(a local directory or a hub id).\n"
    )


def materialize(ref: ModelRef, settings: Settings) -> str:
    """A path or hub id that `from_pretrained` can load for `ref`."""
    if ref.kind == "builtin":
        target = settings.models_dir / ref.source
        if not (target / "config.json").exists():
            build_builtin(ref.source, target)
        return str(target)
    return ref.source


def load_tokenizer(ref: ModelRef, settings: Settings) -> PreTrainedTokenizerBase:
    source = materialize(ref, settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:  # ValueError: a directory whose config names no known model
        raise _unavailable(ref, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(ref: ModelRef, settings: Settings, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    source = materialize(ref, settings)
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise _unavailable(ref, exc) from exc


def _unavailable(ref: ModelRef, exc: Exception) -> ModelUnavailable:
    """The hub library's own message names cache paths and URLs: it goes to the log, not the answer."""
    log.warning("could not load %s: %s", ref.source, exc)
    mapped = f"'{ref.name}' maps to hub model '{ref.source}'" if ref.kind == "alias" else f"'{ref.name}'"
    return ModelUnavailable(
        f"Could not load {mapped}. Without a reachable model hub, point "
        "--model at a local checkpoint directory, map the alias to one with TUNEFORGE_MODEL_ALIASES, or "
        f"use a built-in model ({', '.join(BUILTIN_MODELS)}).",
        param="model",
    )


def checksum(model_dir: Path) -> str:
    """sha256 over the weights and the tokenizer vocabulary: equal names give equal checksums."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    tensors = load_file(str(model_dir / "model.safetensors"))
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].contiguous().numpy().tobytes())
    digest.update((model_dir / "tokenizer.json").read_bytes())
    return digest.hexdigest()

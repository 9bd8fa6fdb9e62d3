"""Build the model a run trains: a base model (built-in, local, hub) or an earlier fine-tune, wrapped in
LoRA adapters or trained whole, or restored from one of this run's checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, PreTrainedModel

from tuneforge import catalog
from tuneforge.catalog import ModelRef
from tuneforge.settings import Settings
from tuneforge.training import base_models
from tuneforge.training.artifacts import read_manifest
from tuneforge.training.estimate import Shape


@dataclass(frozen=True)
class Lineage:
    """What a run starts from. `base` is what the output's weights or adapter apply to."""

    ref: ModelRef  # what --model resolved to
    base: dict[str, str]  # {"name", "kind", "source"} recorded in the manifest
    builtin: bool  # randomly initialised built-in underneath
    parent_manifest: dict[str, Any] | None  # when continuing an earlier fine-tune


def lineage(name: str, settings: Settings) -> Lineage:
    ref = catalog.resolve(name, settings)
    parent = read_manifest(Path(ref.source)) if ref.kind == "local" else None
    if parent is None:
        return Lineage(ref, _identity(ref), ref.kind == "builtin", None)
    base = parent["base_model"] if parent["method"] == "lora" else _identity(ref)
    builtin = parent.get("builtin_base", parent["base_model"]["kind"] == "builtin")
    return Lineage(ref, dict(base), bool(builtin), parent)


def _identity(ref: ModelRef) -> dict[str, str]:
    return {"name": ref.name, "kind": ref.kind, "source": ref.source}


def count_parameters(lin: Lineage, settings: Settings) -> int:
    """Parameter count from the config alone (no weights loaded) to choose the default method."""
    from transformers import AutoConfig

    source = base_models.materialize(catalog.resolve(lin.base["source"], settings), settings)
    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def count_for_training(lin: Lineage, settings: Settings, tuning: str, lora: dict[str, Any]) -> Any:
    """The model a run would train, built on the meta device (no weights, no memory): what the preflight
    counts parameters and trainable parameters on. A continued LoRA fine-tune keeps its adapter's shape."""
    from transformers import AutoConfig

    source = base_models.materialize(catalog.resolve(lin.base["source"], settings), settings)
    continued_lora = lin.parent_manifest is not None and lin.parent_manifest["method"] == "lora"
    adapter = LoraConfig.from_pretrained(lin.ref.source) if continued_lora else lora_config(**lora)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
        return get_peft_model(model, adapter) if tuning == "lora" else model


def shape(model: Any) -> Shape:
    """The sizes activations scale with, read from the config (Llama and GPT-2 names both answer)."""
    config = model.config
    hidden = int(config.hidden_size)
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    return Shape(
        int(config.num_hidden_layers), hidden, int(intermediate or 4 * hidden), int(config.vocab_size)
    )


def load_for_training(
    lin: Lineage, settings: Settings, method: str, lora: dict[str, Any], seed: int
) -> PreTrainedModel:
    """The trainable model: LoRA continues an earlier adapter or adds a fresh one; full training of a LoRA
    fine-tune merges it first."""
    if lin.parent_manifest is not None and lin.parent_manifest["method"] == "lora":
        base = _load_base(lin, settings)
        model = PeftModel.from_pretrained(base, lin.ref.source, is_trainable=(method == "lora"))
        if method == "lora":
            return model
        merged = model.merge_and_unload()
        merged.requires_grad_(True)
        return merged
    model = base_models.load_model(lin.ref, settings)
    if method == "full":
        return model
    torch.manual_seed(seed)  # LoRA's A matrices are drawn at random: equal seeds, equal adapters
    return get_peft_model(model, lora_config(**lora))


def load_checkpoint_model(lin: Lineage, settings: Settings, method: str, checkpoint: Path) -> PreTrainedModel:
    if method == "full":
        return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    return PeftModel.from_pretrained(_load_base(lin, settings), checkpoint, is_trainable=True)


def materialize(lin: Lineage, settings: Settings) -> None:
    """Build the built-in models a run starts from, if this host has not yet (ranks: rank 0 alone)."""
    for ref in (lin.ref, _base_ref(lin, settings)):
        base_models.materialize(ref, settings)


def _load_base(lin: Lineage, settings: Settings) -> PreTrainedModel:
    return base_models.load_model(_base_ref(lin, settings), settings)


def _base_ref(lin: Lineage, settings: Settings) -> ModelRef:
    try:
        return catalog.resolve(lin.base["source"], settings)
    except Exception:  # the source path moved: try the name (a built-in or alias)
        return catalog.resolve(lin.base["name"], settings)


def checkpoint_activations(model: PreTrainedModel) -> None:
    """Gradient checkpointing: each layer keeps only its input and recomputes the rest when the backward
    pass needs it. Non-reentrant, so it works when no input requires a gradient (LoRA: the base is frozen)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def lora_config(r: int, alpha: int, dropout: float) -> LoraConfig:
    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM"
    )

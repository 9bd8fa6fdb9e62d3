"""How a model is served: the prompt format, end-of-text token, stop sequences and chat template it was
trained with, read from its `tuneforge.json`, so a served model stops exactly where it did in training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.catalog import MANIFEST_NAME
from tuneforge.errors import ModelUnavailable

# The documented chat template for models whose tokenizer carries none (built-in bases); the training
# recipe writes this same template into every fine-tuned tokenizer that lacks its own.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|endoftext|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class ServingProfile:
    data_format: str | None = None  # "prompt_completion" | "chat" | None for a base model
    eos_token: str | None = None  # None: the tokenizer's own
    stop: tuple[str, ...] = ()  # stop sequences the model was trained to emit, applied to every request
    classification: dict[str, Any] | None = None
    method: str | None = None  # "full" | "lora" | None for a base model
    base_model: str | None = None  # the base a fine-tuned model was trained from


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{path} cannot be read: {exc}", param="model") from exc
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{path} is not a JSON object", param="model")
    return data


def profile_from_manifest(manifest: dict[str, Any]) -> ServingProfile:
    base = manifest.get("base_model") or {}
    stop = manifest.get("stop") or []
    return ServingProfile(
        data_format=manifest.get("data_format"),
        eos_token=manifest.get("eos_token"),
        stop=tuple(s for s in stop if isinstance(s, str) and s),
        classification=manifest.get("classification"),
        method=manifest.get("method"),
        base_model=base.get("name") if isinstance(base, dict) else None,
    )

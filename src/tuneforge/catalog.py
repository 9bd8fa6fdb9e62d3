"""Base-model resolution without torch: a name becomes a built-in, an alias, a local directory or a hub id.

Loading the weights is the training layer's job (`training.base_models`); this module only decides what a
name means, so `tuneforge models list` and the API can answer without importing torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuneforge import hub
from tuneforge.errors import ModelUnavailable, NotFound
from tuneforge.settings import Settings

ModelKind = Literal["builtin", "alias", "local", "hub"]

# Built-in base models: randomly initialised networks with a byte-level tokenizer, built on first use.
BUILTIN_MODELS: dict[str, str] = {
    "tiny": "Llama architecture, 1.9M parameters, byte-level tokenizer, 1024-token context",
    "tiny-gpt2": "GPT-2 architecture, 0.6M parameters, byte-level tokenizer, 1024-token context",
}

MANIFEST_NAME = "tuneforge.json"  # written beside the weights of every fine-tuned model

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelRef:
    """What a model name resolved to. `source` is a built-in name, a local path or a hub id."""

    name: str
    kind: ModelKind
    source: str
    alias_of: str | None = None

    def describe(self) -> str:
        if self.kind == "alias":
            return f"alias of hub model {self.source}"
        if self.kind == "builtin":
            return f"built-in: {BUILTIN_MODELS[self.source]}"
        return f"{self.kind}: {self.source}"


def resolve(name: str, settings: Settings) -> ModelRef:
    """Resolve a base-model name. Raises NotFound naming what was tried."""
    if name in BUILTIN_MODELS:
        return ModelRef(name, "builtin", name)
    if name in settings.model_aliases:
        return ModelRef(name, "alias", settings.model_aliases[name], alias_of=name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / MANIFEST_NAME).exists():
            raise NotFound(
                f"'{name}' is a directory but holds no model (no config.json or {MANIFEST_NAME})",
                param="model",
                code="model_not_found",
            )
        return ModelRef(name, "local", str(path.resolve()))
    if _HUB_ID_RE.match(name) and not name.startswith((".", "/")):
        return ModelRef(name, "hub", name)
    raise NotFound(
        f"The model '{name}' does not exist. Use a built-in ({', '.join(BUILTIN_MODELS)}), an alias "
        f"({', '.join(sorted(settings.model_aliases))}), a local model directory, or a hub id 'org/name'.",
        param="model",
        code="model_not_found",
    )


def listing(settings: Settings) -> list[ModelRef]:
    """Every base model known by name: built-ins first, then aliases."""
    refs = [ModelRef(name, "builtin", name) for name in BUILTIN_MODELS]
    refs += [ModelRef(a, "alias", hub, alias_of=a) for a, hub in sorted(settings.model_aliases.items())]
    return refs


def unavailable_reason(ref: ModelRef, settings: Settings) -> str | None:
    """None when `ref` can load on this machine; otherwise why not ("hub model 'X' is not in …").
    Built-ins and local directories always load; hub ids (aliases included) need the local hub cache
    or a reachable hub."""
    missing = _missing(ref, settings)
    return None if missing is None else f"hub model '{ref.source}' is {missing}"


def resolve_loadable(name: str, settings: Settings) -> ModelRef:
    """`resolve`, then refuse at once (ModelUnavailable naming `model` and what to set) a hub model that
    could not load here, instead of letting the hub client retry for a minute."""
    ref = resolve(name, settings)
    missing = _missing(ref, settings)
    if missing is None:
        return ref
    what = f"'{name}' maps to hub model '{ref.source}', which" if ref.kind == "alias" else f"'{name}'"
    raise ModelUnavailable(
        f"The model {what} is {missing}. Map the name to a local model directory with "
        "TUNEFORGE_MODEL_ALIASES (a JSON object), pass a local directory as the model, make the hub "
        "reachable (unset HF_HUB_OFFLINE, or set HF_ENDPOINT), or use a built-in model "
        f"({', '.join(BUILTIN_MODELS)}).",
        param="model",
    )


def _missing(ref: ModelRef, settings: Settings) -> str | None:
    return None if ref.kind in ("builtin", "local") else hub.unavailable_reason(ref.source, settings)

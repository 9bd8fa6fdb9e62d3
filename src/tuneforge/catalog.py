"""Base-model resolution without torch: a name becomes a built-in, an alias, a local directory or a hub id.

Loading the weights is the training layer's job (`training.base_models`); this module only decides what a
name means, so `tuneforge models list` and the API can answer without importing torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuneforge.errors import NotFound
from tuneforge.settings import Settings

ModelKind = Literal["builtin", "alias", "local", "hub"]

# Built-in base models: randomly initialised networks with a byte-level tokenizer, built on first use.
BUILTIN_MODELS: dict[str, str] = {
    "tiny": "Llama architecture, 1.9M parameters, byte-level tokenizer, 1024-token context",
    "tiny-gpt2": "GPT-2 architecture, 0.6M parameters, byte-level tokenizer, 1024-token context",
}

MANIFEST_NAME = "tuneforge.json"  # written beside the weights of every fine-tuned model

MAX_MODEL_NAME_BYTES = 255  # the models table's key, and the longest file name a filesystem holds
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
    if len(name.encode()) > MAX_MODEL_NAME_BYTES:
        raise NotFound(
            f"The model '{name[:64]}...' does not exist: "
            f"model names are at most {MAX_MODEL_NAME_BYTES} bytes.",
            param="model",
            code="model_not_found",
        )
    path = _as_path(name)
    if _is_dir(path):
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


def _as_path(name: str) -> Path:
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~someone" with no such user: a name, not a home directory
        return Path(name)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name no filesystem could hold (too long, a NUL byte) is no directory
        return False


def listing(settings: Settings) -> list[ModelRef]:
    """Every base model known by name: built-ins first, then aliases."""
    refs = [ModelRef(name, "builtin", name) for name in BUILTIN_MODELS]
    refs += [ModelRef(a, "alias", hub, alias_of=a) for a, hub in sorted(settings.model_aliases.items())]
    return refs

"""Base-model resolution without torch: a name becomes a built-in, an alias, a local directory or a hub id.

Loading the weights is the training layer's job (`training.base_models`); this module only decides what a
name means, so `tuneforge models list` and the API can answer without importing torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
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


@dataclass(frozen=True)
class LocalDirs:
    """Where a model name that is a filesystem path may point. `roots=None`: anywhere, for the local
    commands, whose user owns the filesystem (and for the training child, whose parent checked the name)."""

    roots: tuple[Path, ...] | None
    excluded: tuple[Path, ...] = ()

    def allows(self, path: Path) -> bool:
        if self.roots is None:
            return True
        try:
            real = path.resolve()  # symlinks and '..' first, so that neither leads out of a root
        except (OSError, RuntimeError):  # a name too long for a path, a symlink loop: not a directory
            return False
        if any(real.is_relative_to(place) for place in self.excluded):
            return False
        return any(real.is_relative_to(root) for root in self.roots)


ANYWHERE = LocalDirs(roots=None)


def server_dirs(settings: Settings) -> LocalDirs:
    """What an API caller may name by path: only the operator's `local_model_dirs` (none by default), and
    never the data directory or blob store, whose jobs, uploads and models belong to organisations."""
    private = [settings.data_dir]
    if "://" not in settings.resolved_blob_url:
        private.append(Path(settings.resolved_blob_url))
    return LocalDirs(roots=_real(settings.local_model_dirs), excluded=_real(private))


def _real(paths: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(path.expanduser().resolve() for path in paths)


def resolve(name: str, settings: Settings, *, local: LocalDirs = ANYWHERE) -> ModelRef:
    """Resolve a base-model name. Raises NotFound naming what was tried. A path outside `local` reads as
    an unknown name, so that the answer tells nothing about what the path holds or whether it exists."""
    if name in BUILTIN_MODELS:
        return ModelRef(name, "builtin", name)
    if name in settings.model_aliases:
        return ModelRef(name, "alias", settings.model_aliases[name], alias_of=name)
    # No filesystem or hub holds a longer name: it is unknown, said as for any other unknown name.
    fits = len(name.encode()) <= MAX_MODEL_NAME_BYTES
    path = _as_path(name)
    if fits and _is_dir(path) and local.allows(path):
        if not (path / "config.json").exists() and not (path / MANIFEST_NAME).exists():
            raise NotFound(
                f"'{name}' is a directory but holds no model (no config.json or {MANIFEST_NAME})",
                param="model",
                code="model_not_found",
            )
        return ModelRef(name, "local", str(path.resolve()))
    # transformers loads a hub id that is also a directory under the working directory from that directory
    if fits and _HUB_ID_RE.match(name) and not name.startswith((".", "/")) and not os.path.isdir(name):
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


def unavailable_reason(ref: ModelRef, settings: Settings) -> str | None:
    """None when `ref` can load on this machine; otherwise why not ("hub model 'X' is not in …").
    Built-ins and local directories always load; hub ids (aliases included) need the local hub cache
    or a reachable hub."""
    missing = _missing(ref, settings)
    return None if missing is None else f"hub model '{ref.source}' is {missing}"


def resolve_loadable(name: str, settings: Settings, *, local: LocalDirs = ANYWHERE) -> ModelRef:
    """`resolve`, then refuse at once (ModelUnavailable naming `model` and what to set) a hub model that
    could not load here, instead of letting the hub client retry for a minute."""
    ref = resolve(name, settings, local=local)
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

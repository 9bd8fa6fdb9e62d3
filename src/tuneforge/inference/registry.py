"""The model registry: loads base models and fine-tuned models (full weights or LoRA adapters) on demand,
keeps a bounded set in memory (LRU under a count and a memory budget), and shares one base model's weights
across all the adapters trained on it (PEFT multi-adapter: one wrapper, one named adapter per model).

Forward passes run only on the scheduler thread. Loading runs on a worker thread, one load at a time,
outside the bookkeeping lock, so requests to loaded models never wait for a load. Anything that changes a
base's modules (attaching or removing an adapter) holds that base's `mutex`, which every forward pass holds
too, so no pass ever sees a half-wrapped model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tuneforge.catalog import ModelRef, resolve
from tuneforge.errors import ModelNotLoadable, ModelUnavailable, NotFound
from tuneforge.inference import tokens
from tuneforge.inference.profile import ServingProfile, profile_from_manifest, read_manifest
from tuneforge.settings import Settings
from tuneforge.training import base_models

log = logging.getLogger(__name__)

Locate = Callable[[str], "ModelRef | Path"]


@dataclass(eq=False)
class BaseWeights:
    """One base model in memory, possibly wrapped by PEFT for the adapters that share it."""

    key: str
    model: Any  # PreTrainedModel, or peft.PeftModel once an adapter is attached
    nbytes: int
    adapters: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)  # registry entries that run on these weights
    mutex: threading.Lock = field(default_factory=threading.Lock)  # forward passes vs module surgery

    @property
    def wrapped(self) -> bool:
        return bool(self.adapters)


@dataclass(eq=False)
class LoadedModel:
    """A servable model: weights (own or shared base + adapter), tokenizer and serving profile."""

    name: str
    base: BaseWeights
    adapter: str | None
    tokenizer: PreTrainedTokenizerBase
    profile: ServingProfile
    nbytes: int  # bytes this entry adds beyond its base (an adapter), or the base's own for base entries
    in_flight: int = 0
    retired: bool = False
    _token_text: dict[int, str] = field(default_factory=dict)
    _token_bytes: dict[int, bytes] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        return self.base.model.config

    @property
    def device(self) -> torch.device:
        return next(self.base.model.parameters()).device

    @property
    def context_length(self) -> int:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 2048))

    @functools.cached_property
    def max_token_chars(self) -> int:
        """The most characters any one token stands for (a vocabulary entry's length bounds it: byte-level
        entries spell each byte as one character). A text longer than `context × this` cannot fit."""
        return max((len(token) for token in self.tokenizer.get_vocab()), default=1) or 1

    def eos_ids(self) -> set[int]:
        """Token ids that end generation: the trained end-of-text token and the model config's eos."""
        ids: set[int] = set()
        eos = self.profile.eos_token or self.tokenizer.eos_token
        if eos is not None:
            token_id = self.tokenizer.convert_tokens_to_ids(eos)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        config_eos = getattr(getattr(self.base.model, "generation_config", None), "eos_token_id", None)
        if config_eos is None:
            config_eos = getattr(self.config, "eos_token_id", None)
        ids.update([config_eos] if isinstance(config_eos, int) else list(config_eos or []))
        return ids

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False)
            self._token_text[token_id] = text
        return text

    def token_bytes(self, token_id: int) -> bytes:
        raw = self._token_bytes.get(token_id)
        if raw is None:
            raw = tokens.token_bytes(self.tokenizer, token_id, self.token_text(token_id))
            self._token_bytes[token_id] = raw
        return raw

    def token_label(self, token_id: int) -> str:
        """The token as logprobs list it (`bytes:\\xe2\\x80` for part of a character)."""
        return tokens.token_label(self.token_bytes(token_id))

    def forward(self, **inputs: Any) -> Any:
        with self.base.mutex, self._adapter_scope(), torch.inference_mode():
            return self.base.model(**inputs)

    @contextlib.contextmanager
    def _adapter_scope(self) -> Iterator[None]:
        if not self.base.wrapped:
            yield
        elif self.adapter is None:  # the base served by its own name while adapters are attached
            with self.base.model.disable_adapter():
                yield
        else:
            if self.base.model.active_adapter != self.adapter:
                self.base.model.set_adapter(self.adapter)
            yield


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _adapter_name(name: str, serial: int) -> str:
    # PEFT adapter names become module attribute keys: safe characters only. The serial keeps a reloaded
    # model apart from its retired copy that may still be finishing requests.
    return f"a{serial}_" + re.sub(r"\W", "_", name)


def _pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class ModelRegistry:
    def __init__(self, settings: Settings, locate: Locate) -> None:
        self._settings = settings
        self._locate = locate
        self._entries: OrderedDict[str, LoadedModel] = OrderedDict()
        self._bases: dict[str, BaseWeights] = {}
        self._lock = threading.RLock()  # bookkeeping: entries, bases, counts
        self._load_lock = threading.Lock()  # one load at a time, so a base is never loaded twice
        self._serial = 0
        self._device = _pick_device()
        self._dtype = torch.float16 if self._device.type == "cuda" else torch.float32

    def get(self, name: str) -> LoadedModel:
        """The loaded model for `name`, loading it (and evicting least-recently-used ones) if needed.
        The caller must `release` it when its request is done."""
        entry = self.get_loaded(name)
        if entry is not None:
            return entry
        with self._load_lock:
            entry = self.get_loaded(name)  # loaded by the request that held the load lock before us
            if entry is not None:
                return entry
            entry = self._load(name)
            with self._lock:
                self._entries[name] = entry
                entry.in_flight += 1
                self._evict(keep=name)
            return entry

    def get_loaded(self, name: str) -> LoadedModel | None:
        """`get` for a model already in memory (never blocks on loading), else None."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                self._entries.move_to_end(name)
                entry.in_flight += 1
            return entry

    def release(self, entry: LoadedModel) -> None:
        with self._lock:
            entry.in_flight -= 1
            if entry.retired and entry.in_flight == 0:
                self._free(entry)

    def unload(self, name: str) -> bool:
        """Forget `name` (its model was deleted). Requests already running finish first."""
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is None:
                return False
            self._retire(entry)
            return True

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def memory_bytes(self) -> int:
        with self._lock:
            adapters = sum(e.nbytes for e in self._entries.values() if e.adapter is not None)
            return adapters + sum(b.nbytes for b in self._bases.values())

    def close(self) -> None:
        with self._lock:
            for name in list(self._entries):
                self.unload(name)

    # -- loading -------------------------------------------------------------------------------------

    def _load(self, name: str) -> LoadedModel:
        where = self._locate(name)
        if isinstance(where, Path) and not (where / "config.json").exists() and read_manifest(where) is None:
            raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
        try:
            return self._load_from(name, where)
        except (OSError, ValueError) as exc:
            log.warning("could not load model %s: %s", name, exc)
            raise ModelNotLoadable(
                f"The model '{name}' cannot be loaded right now; the server's log says why.", param="model"
            ) from exc

    def _load_from(self, name: str, where: ModelRef | Path) -> LoadedModel:
        if isinstance(where, ModelRef):
            base = self._base_for(name, where)
            tokenizer = base_models.load_tokenizer(where, self._settings)
            return self._entry(name, base, None, tokenizer, ServingProfile(), base.nbytes)
        manifest = read_manifest(where)
        profile = profile_from_manifest(manifest)
        if (where / "adapter_config.json").exists():
            return self._load_adapter(name, where, profile)
        base = self._base_for(name, where)
        return self._entry(name, base, None, _tokenizer_at(where), profile, base.nbytes)

    def _load_adapter(self, name: str, where: Path, profile: ServingProfile) -> LoadedModel:
        from peft import PeftModel

        if not profile.base_model:
            raise ModelUnavailable(f"LoRA model '{name}' names no base model in its manifest", param="model")
        ref = resolve(profile.base_model, self._settings)
        base = self._base_for(name, ref)
        self._serial += 1
        adapter = _adapter_name(name, self._serial)
        with base.mutex:
            if base.wrapped:
                base.model.load_adapter(str(where), adapter_name=adapter)
            else:
                base.model = PeftModel.from_pretrained(base.model, str(where), adapter_name=adapter)
                base.model.eval()
            base.adapters.add(adapter)
        nbytes = sum(f.stat().st_size for f in where.glob("adapter_model.*"))
        return self._entry(name, base, adapter, _tokenizer_at(where), profile, nbytes)

    def _base_for(self, user: str, where: ModelRef | Path) -> BaseWeights:
        key = f"ref:{where.source}" if isinstance(where, ModelRef) else f"dir:{where.resolve()}"
        with self._lock:
            base = self._bases.get(key)
        if base is None:
            model = self._load_weights(where)  # slow, and outside the bookkeeping lock
            base = BaseWeights(key, model, _param_bytes(model))
        with self._lock:
            base = self._bases.setdefault(key, base)
            base.users.add(user)
        return base

    def _load_weights(self, where: ModelRef | Path) -> PreTrainedModel:
        if isinstance(where, ModelRef):
            model = base_models.load_model(where, self._settings, dtype=self._dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(where), dtype=self._dtype)
        return model.to(self._device).eval()

    def _entry(
        self,
        name: str,
        base: BaseWeights,
        adapter: str | None,
        tokenizer: PreTrainedTokenizerBase,
        profile: ServingProfile,
        nbytes: int,
    ) -> LoadedModel:
        return LoadedModel(name, base, adapter, tokenizer, profile, nbytes)

    # -- eviction ------------------------------------------------------------------------------------

    def _over_budget(self) -> bool:
        budget = self._settings.inference_memory_budget_mb * 1024 * 1024
        too_many = len(self._entries) > self._settings.inference_max_loaded_models
        return too_many or self.memory_bytes() > budget

    def _evict(self, keep: str) -> None:
        """Drop least-recently-used entries until within budget; the one just asked for always stays."""
        for name in list(self._entries):
            if not self._over_budget():
                return
            if name != keep:
                self._retire(self._entries.pop(name))

    def _retire(self, entry: LoadedModel) -> None:
        entry.retired = True
        if entry.in_flight == 0:
            self._free(entry)

    def _free(self, entry: LoadedModel) -> None:
        base = entry.base
        base.users.discard(entry.name)
        if entry.adapter is not None and entry.adapter in base.adapters:
            with base.mutex:
                base.adapters.discard(entry.adapter)
                if base.adapters:
                    base.model.delete_adapter(entry.adapter)
                else:  # last adapter gone: strip the LoRA layers so the base runs bare again
                    base.model = base.model.unload()
        if not base.users:
            self._bases.pop(base.key, None)
            if self._device.type == "cuda":
                torch.cuda.empty_cache()


def _tokenizer_at(where: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(str(where))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer

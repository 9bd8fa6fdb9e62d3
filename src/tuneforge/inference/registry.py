"""The model registry: loads base models and fine-tuned models (full weights or LoRA adapters) on demand,
keeps a bounded set in memory (LRU: bases and full models under a count and a memory budget, adapters under
`adapter_memory`), and shares one base model's weights across all the adapters trained on it: each adapter
holds a slot in the base's `MultiLora` (inference/lora.py), so one pass can mix rows of different adapters.

Forward passes run only on the scheduler thread. Loading runs on a worker thread, one load at a time,
outside the bookkeeping lock, so requests to loaded models never wait for a load. Anything that changes a
base's modules (writing or clearing an adapter's slot) holds that base's `mutex`, which every forward pass
holds too, so no pass ever sees a half-written adapter; reading the adapter's file happens before, unlocked.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tuneforge.catalog import ModelRef, resolve
from tuneforge.errors import ModelNotLoadable, ModelUnavailable, NotFound
from tuneforge.inference import tokens
from tuneforge.inference.lora import NO_ADAPTER, MultiLora, read_adapter, run_rows
from tuneforge.inference.peft_switch import PeftSwitch
from tuneforge.inference.profile import (
    DEFAULT_CHAT_TEMPLATE,
    ServingProfile,
    profile_from_manifest,
    read_manifest,
)
from tuneforge.settings import Settings
from tuneforge.training import base_models

log = logging.getLogger(__name__)

Locate = Callable[[str], "ModelRef | Path"]


@dataclass(eq=False)
class BaseWeights:
    """One base model in memory and the adapters that share it (their slots in `lora`)."""

    key: str
    model: PreTrainedModel
    nbytes: int
    adapters: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)  # registry entries that run on these weights
    mutex: threading.Lock = field(default_factory=threading.Lock)  # forward passes vs slot writes
    lora: MultiLora | None = None  # created with the first adapter; its wrapped linears stay after
    switch: PeftSwitch | None = None  # instead of `lora` under inference_adapter_batching=peft_switch

    def forward(self, slots: list[int], **inputs: Any) -> Any:
        """One pass in which row i applies adapter slot `slots[i]` (NO_ADAPTER: the base alone)."""
        with self.mutex, torch.inference_mode():
            if self.switch is not None:
                return self.switch.run(slots, **inputs)
            return run_rows(self.lora, self.model, slots, **inputs)


@dataclass(eq=False)
class LoadedModel:
    """A servable model: weights (own or shared base + adapter), tokenizer and serving profile."""

    name: str
    base: BaseWeights
    adapter: str | None
    tokenizer: PreTrainedTokenizerBase
    profile: ServingProfile
    nbytes: int  # bytes this entry adds beyond its base (an adapter), or the base's own for base entries
    slot: int = NO_ADAPTER  # the adapter's slot in its base's MultiLora
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
        """Token ids that end generation: the trained end-of-text token, the model config's eos, and the
        token the chat template ends an assistant turn with (a chat model's reply ends there)."""
        ids = set(self._turn_end_ids)
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

    @functools.cached_property
    def _turn_end_ids(self) -> set[int]:
        template = getattr(self.tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
        return tokens.end_of_turn_ids(self.tokenizer, template)

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
        """A pass of this model alone (every row its adapter)."""
        return self.base.forward([self.slot] * len(inputs["input_ids"]), **inputs)


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _adapter_name(name: str, serial: int) -> str:
    # The serial keeps a reloaded model apart from its retired copy that may still be finishing requests.
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
            return self.adapter_bytes() + sum(b.nbytes for b in self._bases.values())

    def adapter_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values() if e.adapter is not None)

    def adapters(self) -> list[dict[str, Any]]:
        """The loaded adapters, least recently used first (what `GET /v1/tuneforge/adapters` lists)."""
        with self._lock:
            return [
                {"model": e.name, "base": e.profile.base_model, "slot": e.slot, "bytes": e.nbytes,
                 "in_flight": e.in_flight}
                for e in self._entries.values()
                if e.adapter is not None
            ]  # fmt: skip

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
        if not profile.base_model:
            raise ModelUnavailable(f"LoRA model '{name}' names no base model in its manifest", param="model")
        ref = resolve(profile.base_model, self._settings)
        base = self._base_for(name, ref)
        self._serial += 1
        adapter = _adapter_name(name, self._serial)
        if self._settings.inference_adapter_batching == "peft_switch":
            return self._load_switched_adapter(name, where, profile, base, adapter)
        weights = read_adapter(where, self._dtype, self._device)  # before the mutex: passes go on meanwhile
        with base.mutex:
            if base.lora is None:
                base.lora = MultiLora(base.model)
            slot = base.lora.attach(weights)
            base.adapters.add(adapter)
        entry = self._entry(name, base, adapter, _tokenizer_at(where), profile, weights.nbytes)
        entry.slot = slot
        return entry

    def _load_switched_adapter(
        self, name: str, where: Path, profile: ServingProfile, base: BaseWeights, adapter: str
    ) -> LoadedModel:
        """The adapter as the engine loaded it before mixed batches (inference/peft_switch.py)."""
        with base.mutex:
            if base.switch is None:
                base.switch = PeftSwitch(base.model)
            slot = base.switch.attach(where)
            base.adapters.add(adapter)
        nbytes = sum(f.stat().st_size for f in where.glob("adapter_model.*"))
        entry = self._entry(name, base, adapter, _tokenizer_at(where), profile, nbytes)
        entry.slot = slot
        return entry

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

    def _over_budget(self, entry: LoadedModel) -> bool:
        """Whether `entry`'s kind is over its budget: adapters count against `adapter_memory` (they are
        small and many), bases and full models against the model count; everything against the memory
        budget."""
        if self.memory_bytes() > self._settings.inference_memory_budget_mb * 1024 * 1024:
            return True
        if entry.adapter is not None:
            return self.adapter_bytes() > self._settings.adapter_memory
        models = sum(1 for e in self._entries.values() if e.adapter is None)
        return models > self._settings.inference_max_loaded_models

    def _evict(self, keep: str) -> None:
        """Drop least-recently-used entries while their kind is over budget; the one just asked for stays."""
        for name, entry in list(self._entries.items()):
            if name != keep and self._over_budget(entry):
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
                if base.switch is not None:
                    base.switch.detach(entry.slot)
                elif base.lora is not None:
                    base.lora.detach(entry.slot)
        if not base.users:
            self._bases.pop(base.key, None)
            if self._device.type == "cuda":
                torch.cuda.empty_cache()


def _tokenizer_at(where: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(str(where))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer

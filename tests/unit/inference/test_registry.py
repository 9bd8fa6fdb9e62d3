"""The registry: on-demand loading, one base shared by its adapters, LRU under count and memory budgets,
unloading."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.inference.conftest import locator
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.inference.engine import InferenceEngine
from tuneforge.inference.registry import ModelRegistry
from tuneforge.settings import Settings


def _registry(settings: Settings, dirs: dict[str, Path], **limits: int) -> ModelRegistry:
    return ModelRegistry(settings.model_copy(update=limits), locator(settings, dirs))


def _use(registry: ModelRegistry, name: str) -> None:
    registry.release(registry.get(name))


def test_adapters_share_one_base_in_memory(model_settings, model_dirs) -> None:
    registry = _registry(model_settings, model_dirs)
    lora, chat = registry.get("ft-lora"), registry.get("ft-chat")
    base = registry.get(str(model_dirs["base"]))
    assert lora.base is chat.base is base.base
    assert registry.memory_bytes() == base.nbytes + lora.nbytes + chat.nbytes
    assert lora.nbytes < base.nbytes / 2


def test_least_recently_used_models_are_evicted_beyond_the_count(model_settings, model_dirs) -> None:
    registry = _registry(model_settings, model_dirs, inference_max_loaded_models=2)
    base = str(model_dirs["base"])
    for name in ("ft-full", "tiny", "ft-full", base, "ft-lora"):
        _use(registry, name)
    assert registry.loaded() == ["ft-full", base, "ft-lora"]  # adapters count against adapter_memory


def test_the_memory_budget_bounds_what_stays_loaded(model_settings, model_dirs) -> None:
    registry = _registry(model_settings, model_dirs, inference_memory_budget_mb=1)
    _use(registry, "tiny")  # 1.9M float32 parameters: over 1 MB on its own, and still served
    _use(registry, "ft-full")
    assert registry.loaded() == ["ft-full"]


def test_an_evicted_adapter_leaves_the_base_serving_the_rest(model_settings, model_dirs) -> None:
    registry = _registry(model_settings, model_dirs)
    one_adapter = registry.get("ft-lora").nbytes
    registry = _registry(model_settings, model_dirs, adapter_memory=one_adapter + one_adapter // 2)
    _use(registry, "ft-lora")
    _use(registry, "ft-chat")
    _use(registry, str(model_dirs["base"]))
    assert registry.loaded() == ["ft-chat", str(model_dirs["base"])]
    assert registry.get("ft-chat").base.adapters == {registry.get("ft-chat").adapter}
    assert registry.adapters() == [
        {"model": "ft-chat", "base": str(model_dirs["base"]), "slot": 2, "bytes": one_adapter, "in_flight": 2}
    ]


def test_unload_forgets_a_model_and_a_later_request_reloads_it(model_settings, model_dirs) -> None:
    engine = InferenceEngine(model_settings, locator(model_settings, model_dirs))
    request = CompletionRequest(model="ft-lora", prompt="hi ->", max_tokens=4, temperature=0)
    try:
        first = asyncio.run(engine.complete(request))
        engine.unload("ft-lora")
        assert engine.runtime.registry.loaded() == []
        assert engine.runtime.registry.memory_bytes() == 0
        again = asyncio.run(engine.complete(request))
        assert isinstance(first, dict) and isinstance(again, dict)
        assert first["choices"] == again["choices"]
    finally:
        engine.close()

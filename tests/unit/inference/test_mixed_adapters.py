"""Rows of different adapters of one base in one forward pass: each row gets exactly what its adapter
alone (and peft's `PeftModel`) gives it, and the engine shares passes across adapters."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.inference.conftest import locator
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.inference.engine import InferenceEngine
from tuneforge.inference.lora import NO_ADAPTER, MultiLora, read_adapter, run_rows
from tuneforge.settings import Settings


def perturbed(source: Path, target: Path, seed: int) -> Path:
    """A copy of a LoRA model whose adapter weights are scaled by per-weight noise: a distinct adapter
    with a visible effect, built in milliseconds instead of another training run."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    path = target / "adapter_model.safetensors"
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(str(path))
    save_file({k: v * (1 + torch.rand(v.shape, generator=generator)) for k, v in tensors.items()}, str(path))
    return target


@pytest.fixture(scope="module")
def adapter_dirs(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    extra = {f"ft-lora-{i}": perturbed(model_dirs["ft-lora"], root / str(i), seed=i) for i in range(3)}
    return {**model_dirs, **extra}


ADAPTERS = ["ft-lora", "ft-chat", "ft-lora-0", "ft-lora-1", "ft-lora-2"]


def _base_model(settings: Settings, base: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base)).eval()


def test_a_mixed_pass_equals_peft_per_adapter(model_settings, adapter_dirs) -> None:
    from peft import PeftModel

    base_dir = adapter_dirs["base"]
    model = _base_model(model_settings, base_dir)
    lora = MultiLora(model)
    slots = [lora.attach(read_adapter(adapter_dirs[n], torch.float32, torch.device("cpu"))) for n in ADAPTERS]
    ids = torch.tensor([[5, 70, 80, 90, 100, 32]] * 7) + torch.arange(7)[:, None]
    rows = [slots[0], slots[1], NO_ADAPTER, slots[2], slots[3], slots[4], slots[0]]
    with torch.inference_mode():
        mixed = run_rows(lora, model, rows, input_ids=ids).logits
    peft_of = {NO_ADAPTER: _base_model(model_settings, base_dir)}
    for name, slot in zip(ADAPTERS, slots, strict=True):
        peft_of[slot] = PeftModel.from_pretrained(
            _base_model(model_settings, base_dir), str(adapter_dirs[name])
        )
    for i, slot in enumerate(rows):
        with torch.inference_mode():
            alone = peft_of[slot].eval()(input_ids=ids[i : i + 1]).logits[0]
        torch.testing.assert_close(mixed[i], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mixed[0], mixed[1], atol=1e-2)  # the adapters really differ


def test_a_slot_rewritten_between_passes_of_the_same_rows_serves_its_new_adapter(
    model_settings, adapter_dirs
) -> None:
    # The gathered pairs are kept while a batch's rows stay the same: a slot freed and reused by another
    # adapter between two such passes must not serve the old adapter's copy.
    model = _base_model(model_settings, adapter_dirs["base"])
    lora = MultiLora(model)
    read = {n: read_adapter(adapter_dirs[n], torch.float32, torch.device("cpu")) for n in ADAPTERS[:3]}
    first, second = lora.attach(read["ft-lora"]), lora.attach(read["ft-chat"])
    ids = torch.tensor([[5, 70, 80, 90], [6, 71, 81, 91]])
    with torch.inference_mode():
        before = run_rows(lora, model, [first, second], input_ids=ids).logits
        lora.detach(second)
        assert lora.attach(read["ft-lora-0"]) == second  # the freed slot, reused
        after = run_rows(lora, model, [first, second], input_ids=ids).logits
        alone = run_rows(lora, model, [second], input_ids=ids[1:]).logits[0]
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[1], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after[1], before[1], atol=1e-2)


def _request(model: str, i: int) -> CompletionRequest:
    if i % 2:
        return CompletionRequest(
            model=model, prompt=f"what a dull story {i} ->", max_tokens=1, logprobs=5, temperature=0
        )
    return CompletionRequest(
        model=model, prompt=f"I loved this film {i} ->", max_tokens=6, logprobs=2, temperature=0
    )


def _comparable(result: Any) -> list[Any]:
    return [(c["text"], c["logprobs"]["tokens"], c["logprobs"]["token_logprobs"]) for c in result["choices"]]


def test_mixed_batches_equal_one_adapter_at_a_time(model_settings, adapter_dirs) -> None:
    engine = InferenceEngine(model_settings, locator(model_settings, adapter_dirs))
    names = [*ADAPTERS, str(adapter_dirs["base"])]  # the base rides along in the same passes
    requests = [_request(names[i % len(names)], i) for i in range(18)]

    async def alone() -> list[Any]:
        return [await engine.complete(r) for r in requests]

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(engine.complete(r) for r in requests)))

    try:
        solo = asyncio.run(alone())
        before = engine.runtime.scheduler.forward_passes
        batched = asyncio.run(together())
        passes = engine.runtime.scheduler.forward_passes - before
    finally:
        engine.close()
    for one, many in zip(solo, batched, strict=True):
        (text, tokens, logprobs), (text2, tokens2, logprobs2) = _comparable(one)[0], _comparable(many)[0]
        assert (text, tokens) == (text2, tokens2)
        assert logprobs == pytest.approx(logprobs2, abs=1e-4)
    # Six models, 6 tokens each: a few prefill passes and 5 shared decode steps; one group per model
    # (the engine before mixed batches) takes at least 6 x 6 = 36.
    assert passes <= 14
    assert len({r["choices"][0]["text"] for r in solo[::2]}) > 1  # the adapters answer differently


def test_the_peft_switching_baseline_answers_as_mixed_batches_do(model_settings, adapter_dirs) -> None:
    # The benchmark's baseline (the engine before mixed batches) must compute the same answers, or the
    # comparison would time different work.
    names = [*ADAPTERS[:3], str(adapter_dirs["base"])]
    requests = [_request(names[i % len(names)], i) for i in range(8)]
    results = {}
    for mode in ("mixed", "peft_switch"):
        settings = model_settings.model_copy(update={"inference_adapter_batching": mode})
        engine = InferenceEngine(settings, locator(settings, adapter_dirs))

        async def together(engine: InferenceEngine = engine) -> list[Any]:
            return list(await asyncio.gather(*(engine.complete(r) for r in requests)))

        try:
            results[mode] = [_comparable(r)[0] for r in asyncio.run(together())]
        finally:
            engine.close()
    for (text, tokens, logprobs), (text2, tokens2, logprobs2) in zip(*results.values(), strict=True):
        assert (text, tokens) == (text2, tokens2)
        assert logprobs == pytest.approx(logprobs2, abs=1e-4)


def test_adapter_memory_takes_bytes_or_a_size(tmp_path) -> None:
    assert Settings(data_dir=tmp_path, adapter_memory="512MB").adapter_memory == 512 * 1024**2
    assert Settings(data_dir=tmp_path, adapter_memory="2GB").adapter_memory == 2 * 1024**3
    assert Settings(data_dir=tmp_path, adapter_memory=1000).adapter_memory == 1000
    with pytest.raises(ValueError, match="adapter_memory"):
        Settings(data_dir=tmp_path, adapter_memory="lots")

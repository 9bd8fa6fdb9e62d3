"""The engine's /v1/completions against direct transformers computations on the same weights."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from tests.unit.inference import models
from tuneforge.api.protocol.completions import CompletionRequest
from tuneforge.catalog import resolve
from tuneforge.inference.engine import InferenceEngine
from tuneforge.settings import Settings
from tuneforge.training import base_models

PROMPT = "I loved this film ->"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def complete(engine: InferenceEngine, **fields: Any) -> dict[str, Any]:
    result = run(engine.complete(CompletionRequest(**fields)))
    assert isinstance(result, dict)
    return result


def direct(model_settings: Settings, model_dirs: dict[str, Path], name: str) -> tuple[Any, Any]:
    """The same weights loaded the plain transformers/peft way, independent of the engine."""
    if name == "tiny":
        ref = resolve("tiny", model_settings)
        return base_models.load_model(ref, model_settings).eval(), base_models.load_tokenizer(
            ref, model_settings
        )
    path = model_dirs[name]
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(model_dirs["base"])
        return PeftModel.from_pretrained(base, str(path)).eval(), tokenizer
    return AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer


@pytest.mark.parametrize("name", ["tiny", "ft-full", "ft-lora"])
def test_greedy_output_equals_transformers_generate(engine, model_settings, model_dirs, name) -> None:
    model, tokenizer = direct(model_settings, model_dirs, name)
    ids = tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    got = complete(engine, model=name, prompt=PROMPT, max_tokens=12, temperature=0)
    assert got["choices"][0]["text"] == expected


def test_fine_tuned_classifier_answers_its_label_and_stops_at_end_of_text(engine) -> None:
    got = complete(engine, model="ft-full", prompt=PROMPT, max_tokens=10, temperature=0)
    assert got["choices"][0] == {"text": " positive", "index": 0, "logprobs": None, "finish_reason": "stop"}


def label(tokenizer: Any, token_id: int) -> str:
    """OpenAI's name for a byte-level token: its text, or `bytes:` and escapes for part of a character."""
    to_byte = {ch: b for b, ch in bytes_to_unicode().items()}
    raw = bytes(to_byte[ch] for ch in tokenizer.convert_ids_to_tokens(token_id))
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "bytes:" + "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in raw)


@pytest.mark.parametrize("name", ["tiny", "ft-lora"])
def test_logprobs_equal_a_direct_log_softmax(engine, model_settings, model_dirs, name) -> None:
    got = complete(engine, model=name, prompt=PROMPT, max_tokens=4, temperature=0, logprobs=5)
    lp = got["choices"][0]["logprobs"]
    model, tokenizer = direct(model_settings, model_dirs, name)
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # greedy tokens as ids (their text need not round-trip: a lone byte is "\ufffd")
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=4, do_sample=False)
        generated = out[0, len(prompt_ids) :].tolist()
        logits = model(input_ids=torch.tensor([prompt_ids + generated])).logits[0]
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    for k, token_id in enumerate(generated):
        assert lp["token_logprobs"][k] == pytest.approx(logprobs[k, token_id].item(), abs=1e-4)
        top = logprobs[k].topk(5)
        expected = {label(tokenizer, int(t)): v.item() for t, v in zip(top.indices, top.values, strict=True)}
        assert set(expected) <= set(lp["top_logprobs"][k])
        for token, value in expected.items():
            assert lp["top_logprobs"][k][token] == pytest.approx(value, abs=1e-4)
    assert lp["text_offset"][0] == len(PROMPT)


def test_echo_returns_the_prompt_with_its_logprobs(engine, model_settings, model_dirs) -> None:
    got = complete(engine, model="ft-full", prompt=PROMPT, max_tokens=0, echo=True, logprobs=1)
    choice = got["choices"][0]
    assert choice["text"] == PROMPT
    lp = choice["logprobs"]
    model, tokenizer = direct(model_settings, model_dirs, "ft-full")
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    assert "".join(lp["tokens"]) == PROMPT
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    expected = [logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))]
    assert lp["token_logprobs"][1:] == pytest.approx(expected, abs=1e-4)
    assert lp["text_offset"] == [len(PROMPT[:i]) for i in _starts(lp["tokens"])]
    assert got["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}


def _starts(tokens: list[str]) -> list[int]:
    starts, at = [], 0
    for token in tokens:
        starts.append(at)
        at += len(token)
    return starts


def test_echo_with_generation_puts_the_completion_after_the_prompt(engine) -> None:
    got = complete(
        engine, model="ft-full", prompt=PROMPT, max_tokens=12, echo=True, temperature=0, logprobs=0
    )
    assert got["choices"][0]["text"] == PROMPT + " positive"
    assert "".join(got["choices"][0]["logprobs"]["tokens"]) == PROMPT + " positive<|endoftext|>"


def test_stop_sequences_are_cut_exactly_even_across_tokens(engine) -> None:
    full = complete(engine, model="tiny", prompt="hello", max_tokens=16, temperature=0)["choices"][0]["text"]
    stop = full[5:9]  # byte-level tokens are one or two characters: this spans several
    got = complete(engine, model="tiny", prompt="hello", max_tokens=16, temperature=0, stop=[stop, "zzzz"])
    assert got["choices"][0]["text"] == full[: full.index(stop)]
    assert got["choices"][0]["finish_reason"] == "stop"


def test_the_models_own_stop_sequences_apply_and_a_requests_stop_adds_to_them(
    model_settings, model_dirs, tmp_path
) -> None:
    dirs = dict(model_dirs)
    dirs["ft-stop"] = models.with_manifest(model_dirs["ft-full"], tmp_path / "stop", stop=["siti"])
    from tests.unit.inference.conftest import locator

    engine = InferenceEngine(model_settings, locator(model_settings, dirs))
    try:
        trained = complete(engine, model="ft-stop", prompt=PROMPT, max_tokens=8, temperature=0)
        assert trained["choices"][0]["text"] == " po"
        both = complete(engine, model="ft-stop", prompt=PROMPT, max_tokens=8, temperature=0, stop=["os"])
        assert both["choices"][0]["text"] == " p"
    finally:
        engine.close()


def test_usage_counts_with_the_models_tokenizer(engine, model_settings, model_dirs) -> None:
    _, tokenizer = direct(model_settings, model_dirs, "ft-full")
    prompts = [PROMPT, "awful acting ->"]
    got = complete(engine, model="ft-full", prompt=prompts, max_tokens=3, temperature=0, n=2)
    prompt_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    assert got["usage"]["prompt_tokens"] == prompt_tokens
    assert got["usage"]["completion_tokens"] == 4 * 3
    assert [c["index"] for c in got["choices"]] == [0, 1, 2, 3]


def test_token_id_prompts_equal_text_prompts(engine, model_settings, model_dirs) -> None:
    _, tokenizer = direct(model_settings, model_dirs, "ft-full")
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    by_text = complete(engine, model="ft-full", prompt=PROMPT, max_tokens=4, temperature=0)
    by_ids = complete(engine, model="ft-full", prompt=[ids, ids], max_tokens=4, temperature=0)
    assert [c["text"] for c in by_ids["choices"]] == [by_text["choices"][0]["text"]] * 2


def test_a_classifiers_top_logprob_label_is_its_greedy_label(engine) -> None:
    for prompt, label in models.CLASSIFY:
        got = complete(engine, model="ft-full", prompt=prompt, max_tokens=1, temperature=0, logprobs=5)
        choice = got["choices"][0]
        top = choice["logprobs"]["top_logprobs"][0]
        assert max(top, key=top.get) == choice["text"] == label[:2]


def test_max_tokens_1_costs_one_forward_pass(engine) -> None:
    complete(engine, model="ft-full", prompt="warm up", max_tokens=1)
    before = engine.runtime.scheduler.forward_passes
    complete(engine, model="ft-full", prompt=PROMPT, max_tokens=1, logprobs=5)
    assert engine.runtime.scheduler.forward_passes == before + 1


def test_equal_seeds_give_equal_samples_and_choices_differ(engine) -> None:
    fields = {"model": "tiny", "prompt": "hello", "max_tokens": 12, "temperature": 1.0, "n": 3, "seed": 7}
    first, second = complete(engine, **fields), complete(engine, **fields)
    texts = [c["text"] for c in first["choices"]]
    assert texts == [c["text"] for c in second["choices"]]
    assert len(set(texts)) > 1


def test_best_of_returns_the_n_most_likely_candidates(engine) -> None:
    fields = {"model": "tiny", "prompt": "hello", "max_tokens": 6, "seed": 3, "logprobs": 0}
    many = complete(engine, **fields, n=4)
    best = complete(engine, **fields, n=1, best_of=4)
    mean = [sum(c["logprobs"]["token_logprobs"]) / 6 for c in many["choices"]]
    assert best["choices"][0]["text"] == many["choices"][mean.index(max(mean))]["text"]
    assert best["usage"]["completion_tokens"] == 24


def test_logit_bias_forces_a_token(engine) -> None:
    got = complete(engine, model="tiny", prompt="hello", max_tokens=3, temperature=0, logit_bias={"65": 100})
    assert got["choices"][0]["text"] == "bbb"  # byte-level id 65 is "b"

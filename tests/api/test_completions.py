"""/v1/completions and /v1/chat/completions through the official openai SDK, on fine-tuned test models
(full and LoRA, prompt/completion and chat) served by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.unit.inference import conftest as inference_fixtures
from tuneforge.api import errors
from tuneforge.api.app import create_app
from tuneforge.api.routes import completions
from tuneforge.inference.engine import InferenceEngine
from tuneforge.settings import Settings

PROMPT = "I loved this film ->"

# The fine-tuned test models, shared with the inference unit tests (pytest finds fixtures by these names).
model_settings = inference_fixtures.model_settings
model_dirs = inference_fixtures.model_dirs
one_torch_thread = inference_fixtures.one_torch_thread


@pytest.fixture
def http(settings: Settings, model_settings: Settings, model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    """`create_app`'s app (auth, error handler, routes), its engine serving the test models by name."""
    app = create_app(settings, workers=0)
    if "/v1/completions" not in app.openapi()["paths"]:  # until create_app includes the router
        app = FastAPI()
        errors.install(app)
        app.include_router(completions.router, prefix="/v1")
    else:
        app.state.inference.close()
    engine = InferenceEngine(model_settings, inference_fixtures.locator(model_settings, model_dirs))
    app.state.inference = engine
    with TestClient(app) as client:
        yield client
    engine.close()


@pytest.fixture
def client(http: TestClient) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)


def test_a_fine_tuned_classifier_answers_through_the_sdk(client: OpenAI) -> None:
    response = client.completions.create(
        model="ft-full", prompt=PROMPT, max_tokens=10, temperature=0, logprobs=2
    )
    choice = response.choices[0]
    assert (choice.text, choice.finish_reason) == (" positive", "stop")
    assert response.object == "text_completion" and response.id.startswith("cmpl-")
    assert choice.logprobs is not None and choice.logprobs.tokens[:2] == [" p", "o"]
    assert response.usage is not None and response.usage.completion_tokens == 9  # 8 characters + end-of-text


def test_streamed_text_equals_non_streamed(client: OpenAI) -> None:
    fields: dict[str, Any] = {
        "model": "tiny",
        "prompt": "hello",
        "max_tokens": 24,
        "temperature": 0.7,
        "seed": 5,
    }
    whole = client.completions.create(**fields, n=2, logprobs=1, stop=["\n\n"])
    texts, tokens = ["", ""], [[], []]  # type: ignore[var-annotated]
    for chunk in client.completions.create(**fields, n=2, logprobs=1, stop=["\n\n"], stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            tokens[choice.index] += choice.logprobs.tokens if choice.logprobs else []
    assert texts == [c.text for c in whole.choices]
    assert tokens == [c.logprobs.tokens for c in whole.choices if c.logprobs]


def test_a_streamed_echo_with_logprobs_equals_the_whole_response(client: OpenAI) -> None:
    fields: dict[str, Any] = {"model": "ft-full", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    whole = client.completions.create(**fields, echo=True, logprobs=2)
    text, offsets = "", []
    for chunk in client.completions.create(**fields, echo=True, logprobs=2, stream=True):
        text += chunk.choices[0].text
        offsets += chunk.choices[0].logprobs.text_offset if chunk.choices[0].logprobs else []
    assert text == whole.choices[0].text == PROMPT + " positive"
    assert whole.choices[0].logprobs is not None and offsets == whole.choices[0].logprobs.text_offset


def test_tokens_that_split_a_character_are_listed_by_their_bytes(client: OpenAI) -> None:
    """The byte-level tokenizer cuts "é" and "☕" across tokens: like OpenAI, those tokens read `bytes:…`
    (never a bare U+FFFD), and chat reports each token's real bytes, which join up to the text."""
    prompt = "café ☕"
    whole = client.completions.create(
        model="tiny", prompt=prompt, max_tokens=0, echo=True, logprobs=1, temperature=0
    )
    tokens = whole.choices[0].logprobs.tokens  # type: ignore[union-attr]
    assert tokens[:3] == ["c", "a", "f"] and "bytes:\\xc3" in tokens and "bytes: \\xe2" in tokens
    assert not any("\ufffd" in token for token in tokens)

    chat = client.chat.completions.create(
        model="ft-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=12, logprobs=True,
        top_logprobs=2, temperature=0,
    )  # fmt: skip
    content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
    assert (
        bytes(b for entry in content for b in entry.bytes or []).decode() == chat.choices[0].message.content
    )


def test_stream_ends_with_done_and_can_carry_usage(http: TestClient) -> None:
    body = {
        "model": "ft-full",
        "prompt": PROMPT,
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/v1/completions", json=body) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


def test_the_legacy_cli_request_echoes_the_prompt(http: TestClient) -> None:
    """`openai api completions.create` sends echo true and every unset option as null."""
    body = {
        "model": "ft-full", "prompt": PROMPT, "max_tokens": 10, "temperature": 0, "echo": True, "n": None,
        "stream": False, "logprobs": None, "stop": None, "top_p": None, "best_of": None, "suffix": None,
        "presence_penalty": None, "frequency_penalty": None, "logit_bias": None, "user": None,
        "an_unknown_field": 1,
    }  # fmt: skip
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == PROMPT + " positive"


def test_chat_greedy_equals_generate_with_the_models_chat_template(client: OpenAI, model_dirs) -> None:
    messages = [{"role": "user", "content": "hi"}]
    response = client.chat.completions.create(
        model="ft-chat", messages=messages, temperature=0, max_tokens=12
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dirs["ft-chat"])
    from peft import PeftModel

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_dirs["base"]), str(model_dirs["ft-chat"])
    )
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.eval().generate(ids, max_new_tokens=12, do_sample=False)
    expected = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected
    assert choice.finish_reason == ("stop" if out[0, -1] == tokenizer.eos_token_id else "length")
    assert response.usage is not None and response.usage.prompt_tokens == ids.shape[1]


def test_chat_logprobs_and_stream(client: OpenAI) -> None:
    fields: dict[str, Any] = {
        "model": "ft-chat", "messages": [{"role": "user", "content": "capital of France?"}],
        "max_tokens": 10, "temperature": 0, "logprobs": True, "top_logprobs": 3, "n": 2,
    }  # fmt: skip
    whole = client.chat.completions.create(**fields)
    content = whole.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(len(t.top_logprobs) == 3 for t in content)
    assert all(t.logprob == max(a.logprob for a in t.top_logprobs) for t in content)  # greedy: the top one
    streamed = ["", ""]
    for chunk in client.chat.completions.create(**fields, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == [c.message.content for c in whole.choices]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": 6}, "logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 3, "best_of": 2}, "n"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"prompt": "x" * 1100}, "prompt"),
        ({"temperature": 3}, "temperature"),
        ({"suffix": "and then"}, "suffix"),
        ({"logit_bias": {"99999": 1}}, "logit_bias"),
    ],
)
def test_bad_input_is_a_400_naming_the_param(client: OpenAI, fields: dict[str, Any], param: str) -> None:
    request = {"model": "tiny", "prompt": "hello", "max_tokens": 4} | fields
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**request)
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == param
    assert caught.value.body["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-model", prompt="hi")
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])

"""/v1/completions and /v1/chat/completions as `create_app` wires them (auth, error handler, the engine in
`app.state.inference`), through the official openai SDK, on the built-in base model."""

from __future__ import annotations

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.unit.inference import conftest as inference_fixtures

one_torch_thread = inference_fixtures.one_torch_thread  # tiny models: one thread is fastest


@pytest.fixture(autouse=True)
def _needs_the_completions_routes(app: FastAPI) -> None:
    if "/v1/completions" not in app.openapi()["paths"]:
        pytest.skip("create_app does not include the completions router yet")


def test_completions_and_chat_are_served_by_the_apps_engine(client: OpenAI) -> None:
    first = client.completions.create(model="tiny", prompt="hello", max_tokens=6, temperature=0, logprobs=1)
    again = client.completions.create(model="tiny", prompt="hello", max_tokens=6, temperature=0)
    assert first.choices[0].text == again.choices[0].text
    assert first.usage is not None and first.usage.prompt_tokens == 5  # one byte-level token per character
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0
    )
    assert chat.choices[0].message.role == "assistant" and chat.usage is not None
    assert chat.usage.completion_tokens <= 4


def test_a_stream_through_the_app_equals_the_whole_response(client: OpenAI) -> None:
    whole = client.completions.create(model="tiny", prompt="abc", max_tokens=8, temperature=0)
    pieces = client.completions.create(model="tiny", prompt="abc", max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in pieces if c.choices) == whole.choices[0].text


def test_errors_use_openais_envelope(client: OpenAI, http: TestClient) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="no-such-model", prompt="hi")
    assert isinstance(missing.value.body, dict) and missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="tiny", prompt="hi", logprobs=6)
    assert isinstance(bad.value.body, dict) and bad.value.body["param"] == "logprobs"

"""API tests talk to an in-process app through the official openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tuneforge.api.app import create_app
from tuneforge.settings import Settings


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings, workers=0)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(http: TestClient) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    rows = [
        {"prompt": f"review {i} ->", "completion": " positive" if i % 2 else " negative"} for i in range(30)
    ]
    return write_jsonl(tmp_path / "train.jsonl", rows)


def post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    """The ASGI scope of a POST to `path`, for tests that drive the app below any HTTP client."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

"""Bodies are paid for only by callers with a key, and only up to the limit: a request without a valid key
is answered 401 before a byte of its body is read, and a chunked body (no Content-Length) is counted as it
streams and refused with a 413 the moment it passes the limit. Driven at the ASGI level, where what the
server reads can be counted (a test client reads the whole body before the app sees it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from tests.api.conftest import post_scope
from tuneforge.api.app import create_app
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store

MIB = 1024 * 1024


@dataclass
class Exchange:
    """One request whose body is `chunks` pieces of 1 MiB, sent chunked; what the app read and answered."""

    chunks: int
    prefix: bytes = b""  # sent before the first MiB
    read: int = 0
    status: int = 0
    body: bytes = b""
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self) -> dict[str, Any]:
        if self.read == self.chunks:
            await asyncio.sleep(3600)  # the body has all been sent: a client that waits for its answer
        body = (self.prefix if self.read == 0 else b"") + b" " * MIB
        self.read += 1
        return {"type": "http.request", "body": body, "more_body": self.read < self.chunks}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def error(self) -> dict[str, Any]:
        return json.loads(self.body)["error"]  # type: ignore[no-any-return]


def call(app: FastAPI, path: str, exchange: Exchange, headers: dict[str, str]) -> Exchange:
    scope = post_scope(path, [(k.lower().encode(), v.encode()) for k, v in headers.items()])
    asyncio.run(asyncio.wait_for(app(scope, exchange.receive, exchange.send), timeout=60))
    return exchange


@pytest.fixture
def secure_app(settings: Settings) -> FastAPI:
    limits = {"auth": True, "max_request_bytes": 4 * MIB, "max_upload_bytes": 8 * MIB}
    return create_app(settings.model_copy(update=limits), workers=0)


def new_key(app: FastAPI) -> str:
    with app.state.database.session() as session:
        return key_store.create_key(session, org="acme")[1]


@pytest.mark.parametrize("authorization", [None, "Bearer tf-not-a-key", "Basic abc"])
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/files", "/v1/fine_tuning/jobs"])
def test_no_valid_key_is_a_401_before_the_body_is_read(
    secure_app: FastAPI, path: str, authorization: str | None
) -> None:
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    if authorization:
        headers["authorization"] = authorization
    exchange = call(secure_app, path, Exchange(chunks=1024), headers)  # 1 GiB on offer
    assert exchange.status == 401
    assert exchange.error()["type"] == "invalid_request_error"
    assert exchange.read == 0


def test_a_chunked_json_body_is_cut_off_at_the_limit(secure_app: FastAPI) -> None:
    headers = {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {new_key(secure_app)}",
    }
    exchange = call(secure_app, "/v1/completions", Exchange(chunks=1024), headers)
    assert exchange.status == 413
    assert exchange.error()["code"] == "payload_too_large"
    assert exchange.read == 5  # the fifth MiB passed the 4 MiB limit; nothing more was read
    starts = [m for m in exchange.messages if m["type"] == "http.response.start"]
    assert len(starts) == 1  # the app's own answer to the cut-off body is not sent after the 413


def test_a_chunked_upload_is_cut_off_at_the_limit_and_leaves_nothing(
    secure_app: FastAPI, settings: Settings
) -> None:
    headers = {
        "content-type": "multipart/form-data; boundary=xyz",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {new_key(secure_app)}",
    }
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'
    exchange = call(secure_app, "/v1/files", Exchange(chunks=1024, prefix=part), headers)
    assert exchange.status == 413
    assert exchange.read == 9  # 8 MiB and the multipart allowance, then one more MiB
    blobs = settings.data_dir / "blobs" / "files"
    assert not blobs.exists() or not any(blobs.iterdir())


def test_a_body_within_the_limit_still_reaches_the_route(secure_app: FastAPI) -> None:
    headers = {
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {new_key(secure_app)}",
    }
    exchange = call(secure_app, "/v1/fine_tuning/jobs", Exchange(chunks=2), headers)
    assert exchange.read == 2
    assert exchange.status == 400  # 2 MiB of spaces: not a JSON object, the route's own answer

"""Hostile input: schemathesis drives every operation of the server's own OpenAPI document, and
hypothesis throws random uploads at /v1/files. Neither may produce a 500, and a refused upload leaves
no record or blob behind. The default run draws 150 operation cases; the `nightly` marker (deselected
by default: `pytest -m nightly tests/api/test_fuzz.py`) draws thousands on each database."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tuneforge.api.app import create_app
from tuneforge.settings import Settings

FUZZ = hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.fixture
def fuzz_app(settings: Settings) -> FastAPI:
    return create_app(settings, workers=0)


def operation_cases(app: FastAPI) -> st.SearchStrategy[schemathesis.Case]:
    """Cases for every operation in the app's OpenAPI document (schemathesis's own pytest plugin does
    not run on this pytest, so its strategies are drawn directly)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    return st.sampled_from(operations).flatmap(lambda operation: operation.as_strategy())


def answer_without_500(app: FastAPI, cases: int) -> None:
    @given(case=operation_cases(app))
    @hypothesis_settings(
        max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    check()


def test_no_operation_answers_500(fuzz_app: FastAPI) -> None:
    answer_without_500(fuzz_app, 150)


NIGHTLY_CASES = 5000  # per database: about two minutes each on two shared cores


@pytest.mark.nightly
def test_thousands_of_cases_answer_no_500_on_either_database(settings: Settings, database_url: str) -> None:
    """The nightly run (`pytest -m nightly`): thousands of cases over every operation, on SQLite and on
    PostgreSQL (which refuses what SQLite keeps, such as NUL bytes in strings)."""
    app = create_app(settings.model_copy(update={"database_url": database_url}), workers=0)
    try:
        with TestClient(app) as http:  # the first completion loads torch and the model: not a case's time
            warm = {"model": "tiny", "prompt": "x", "max_tokens": 1}
            assert http.post("/v1/completions", json=warm).status_code == 200
        answer_without_500(app, NIGHTLY_CASES)
    finally:
        app.state.database.close()


@pytest.fixture
def http(fuzz_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fuzz_app) as client:
        yield client


def deep_json(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


hostile_uploads = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(str.encode),
    st.builds(lambda n: b'{"prompt": "' + b"a" * n + b'", "completion": " b"}\n', st.integers(0, 200_000)),
    st.builds(lambda d: b'{"prompt": ' + deep_json(d) + b', "completion": " x"}\n', st.integers(1, 5000)),
    st.just(b'{"prompt": "caf\xe9", "completion": " ok"}\n'),  # invalid UTF-8
    st.just(b'{"prompt": "=cmd|\' /C calc\'!A0", "completion": "@SUM(1+1)"}\n'),  # CSV-injection payloads
    st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), max_size=5).map(
        lambda rows: "".join(json.dumps(row) + "\n" for row in rows).encode()
    ),
)


@given(content=hostile_uploads)
@FUZZ
def test_hostile_uploads_get_4xx_or_a_whole_file(
    http: TestClient, settings: Settings, content: bytes
) -> None:
    before = {f["id"] for f in http.get("/v1/files").json()["data"]}
    response = http.post("/v1/files", files={"file": ("data.jsonl", content)}, data={"purpose": "fine-tune"})
    after = {f["id"] for f in http.get("/v1/files").json()["data"]}
    assert response.status_code in (200, 400, 413), response.text
    assert set(response.json()) == {"error"} or response.json()["object"] == "file"
    if response.status_code != 200:
        assert after == before
    blobs = settings.data_dir / "blobs" / "files"
    stored = {path.name for path in blobs.iterdir()} if blobs.exists() else set()
    assert stored == after  # no partial or orphaned blob

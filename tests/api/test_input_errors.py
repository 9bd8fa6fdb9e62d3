"""Client input that used to answer 500 (and drop the kept-alive connection) answers a 4xx in OpenAI's
envelope naming what was wrong, on SQLite and on PostgreSQL alike: bodies that are not JSON objects,
list limits outside OpenAI's bounds, model names no filesystem could hold, and NUL bytes anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openai import BadRequestError, NotFoundError, OpenAI

from tuneforge.api.app import create_app
from tuneforge.settings import Settings

LONG_MODEL = "m" * 300  # 256 bytes or more: longer than a file name may be
CHAT = [{"role": "user", "content": "hi"}]


@pytest.fixture
def http(settings: Settings, database_url: str) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"database_url": database_url}), workers=0)
    with TestClient(app) as client:
        yield client
    app.state.database.close()


@pytest.fixture
def client(http: TestClient) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)


@pytest.fixture
def file_id(client: OpenAI, train_file: Path) -> str:
    return client.files.create(file=train_file.open("rb"), purpose="fine-tune").id


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("body", [[1, 2], "model", 3, None, True])
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_a_json_body_that_is_not_an_object_is_a_400(http: TestClient, path: str, body: object) -> None:
    response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["type"] == "invalid_request_error"


@pytest.mark.parametrize("limit", ["9223372036854775807", "10001", "-1", "0"])
def test_a_files_limit_outside_openais_bounds_is_a_400_naming_limit(http: TestClient, limit: str) -> None:
    response = http.get("/v1/files", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == "limit"


def test_a_files_limit_within_the_bounds_lists(client: OpenAI, file_id: str) -> None:
    assert [f.id for f in client.files.list(extra_query={"limit": 1})] == [file_id]


def test_a_256_byte_model_name_is_an_unknown_model_everywhere(
    client: OpenAI, http: TestClient, file_id: str
) -> None:
    calls = [
        lambda: client.completions.create(model=LONG_MODEL, prompt="x", max_tokens=1),
        lambda: client.chat.completions.create(model=LONG_MODEL, messages=CHAT),  # type: ignore[arg-type]
        lambda: client.fine_tuning.jobs.create(model=LONG_MODEL, training_file=file_id),
        lambda: client.models.retrieve(LONG_MODEL),
        lambda: client.models.delete(LONG_MODEL),
    ]
    for call in calls:
        with pytest.raises((NotFoundError, BadRequestError)) as refused:
            call()
        assert refused.value.body["param"] == "model", refused.value.body  # type: ignore[index]
    raw = [
        http.post("/v1/fine-tunes", json={"model": LONG_MODEL, "training_file": file_id}),
        http.get(f"/v1/files/{file_id}/report", params={"model": LONG_MODEL}),
        http.post("/v1/tuneforge/evaluations", json={"model": LONG_MODEL, "file": file_id}),
    ]
    for response in raw:
        assert response.status_code in (400, 404), response.text
        assert error_of(response)["param"] == "model"


@pytest.mark.parametrize("model", ["~0", "~no-such-user/model"])
def test_a_model_name_no_path_could_be_is_an_unknown_model(client: OpenAI, model: str) -> None:
    with pytest.raises(NotFoundError) as refused:
        client.completions.create(model=model, prompt="x", max_tokens=1)
    assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_nul_bytes_in_ids_and_query_values_are_400s_naming_them(http: TestClient) -> None:
    cases = {
        "/v1/files/file-a%00b": None,
        "/v1/fine_tuning/jobs/ftjob-a%00b": None,
        "/v1/fine-tunes/ft-a%00b/events": None,
        "/v1/models/ft:tiny:a%00b": None,
        "/v1/files?purpose=fine-tune%00": "purpose",
        "/v1/fine_tuning/jobs?after=ftjob-%00": "after",
        "/v1/files?after%00=x": "after\x00",
    }
    for url, param in cases.items():
        response = http.get(url)
        assert response.status_code == 400, (url, response.text)
        assert error_of(response)["param"] == param, url
        assert "NUL byte" in str(error_of(response)["message"])


def test_a_nul_byte_in_a_body_id_is_a_400(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="tiny", training_file="file-a\x00b")
    assert "NUL byte" in refused.value.message


def test_a_nul_byte_in_a_filename_is_a_400_and_leaves_no_blob(
    client: OpenAI, http: TestClient, settings: Settings, train_file: Path
) -> None:
    response = http.post(
        "/v1/files",
        files={"file": ("train.jsonl", train_file.read_bytes())},
        data={"purpose": "fine-tune", "user_provided_filename": "a\x00b.jsonl"},
    )
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == "filename"
    assert client.files.list().data == []
    blobs = settings.data_dir / "blobs" / "files"
    assert not blobs.exists() or not any(blobs.iterdir())

"""The Batch API through the SDK: a file of completions and chat requests (purpose `batch`), run by the
embedded worker through the inference engine, answers exactly as the routes do, in OpenAI's output and
error line format, with `request_counts`; bad input files are refused naming the line; cancel and the
completion window stop a batch and keep what finished."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI
from openai.types import Batch

from tests.api.conftest import write_jsonl
from tuneforge.api.app import create_app
from tuneforge.settings import Settings
from tuneforge.store import batches as batch_store


def _request(i: int, **body: Any) -> dict[str, Any]:
    fields = {"model": "tiny", "prompt": f"review {i} ->", "max_tokens": 1, "logprobs": 5, "temperature": 0}
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": {**fields, **body}}


def _upload(client: OpenAI, path: Path, rows: list[dict[str, Any]]) -> str:
    return client.files.create(file=write_jsonl(path, rows).open("rb"), purpose="batch").id


def _wait(client: OpenAI, batch_id: str, statuses: tuple[str, ...], timeout_s: float = 120) -> Batch:
    deadline = time.monotonic() + timeout_s
    while (batch := client.batches.retrieve(batch_id)).status not in statuses:
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.1)
    return batch


def _lines(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


@pytest.fixture
def worker_app(settings: Settings) -> Iterator[FastAPI]:
    yield create_app(settings, workers=1)


@pytest.fixture
def worker_client(worker_app: FastAPI) -> Iterator[OpenAI]:
    with TestClient(worker_app) as http:
        yield OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)


def test_a_batch_answers_as_the_routes_do_with_counts_and_both_files(
    worker_client: OpenAI, tmp_path: Path
) -> None:
    client = worker_client
    rows = [_request(i) for i in range(40)]
    rows.append(_request(40, max_tokens=-1))  # the route's own 400
    rows.append(_request(41, model="ft:tiny:nobody::missing"))  # no such model: 404
    file_id = _upload(client, tmp_path / "in.jsonl", rows)
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h", metadata={"team": "a"}
    )
    assert batch.status == "validating" and batch.request_counts is not None
    assert batch.request_counts.total == 42 and batch.metadata == {"team": "a"}

    done = _wait(client, batch.id, ("completed", "failed"))
    assert done.status == "completed" and done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (40, 2)
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    output = {line["custom_id"]: line for line in _lines(client, done.output_file_id)}
    assert sorted(output) == sorted(f"r{i}" for i in range(40))
    direct = client.completions.create(**rows[7]["body"])
    answer = output["r7"]["response"]
    assert answer["status_code"] == 200 and output["r7"]["error"] is None
    assert answer["body"]["choices"][0]["text"] == direct.choices[0].text
    [batched] = answer["body"]["choices"][0]["logprobs"]["top_logprobs"]
    [alone] = direct.choices[0].logprobs.top_logprobs  # type: ignore[union-attr]
    assert len(batched) == 5 and batched == pytest.approx(alone, abs=1e-4)  # padded in a batch vs alone
    errors = {line["custom_id"]: line["response"] for line in _lines(client, done.error_file_id)}
    assert errors["r40"]["status_code"] == 400 and errors["r40"]["body"]["error"]["param"] == "max_tokens"
    assert errors["r41"]["status_code"] == 404 and errors["r41"]["body"]["error"]["param"] == "model"
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"  # type: ignore[arg-type]
    assert [b.id for b in client.batches.list().data] == [batch.id]


def test_a_chat_batch(worker_client: OpenAI, tmp_path: Path) -> None:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "temperature": 0,
    }
    rows = [{"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": body}]
    file_id = _upload(worker_client, tmp_path / "chat.jsonl", rows)
    batch = worker_client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _wait(worker_client, batch.id, ("completed", "failed"))
    [line] = _lines(worker_client, done.output_file_id)
    direct = worker_client.chat.completions.create(**body)
    assert line["response"]["body"]["choices"][0]["message"]["content"] == direct.choices[0].message.content


@pytest.mark.parametrize(
    ("row", "where"),
    [
        (
            {"custom_id": "a", "method": "GET", "url": "/v1/completions", "body": {"model": "tiny"}},
            "field 'method'",
        ),
        (
            {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "tiny"}},
            "field 'url'",
        ),
        ({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {}}, "field 'body.model'"),
        ({"method": "POST", "url": "/v1/completions", "body": {"model": "tiny"}}, "field 'custom_id'"),
        (
            {"custom_id": "r0", "method": "POST", "url": "/v1/completions", "body": {"model": "t"}},
            "used twice",
        ),
    ],
)
def test_a_bad_batch_file_is_refused_naming_its_line(
    client: OpenAI, tmp_path: Path, row: dict[str, Any], where: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        _upload(client, tmp_path / "bad.jsonl", [_request(0), row])
    assert "bad.jsonl, line 2" in error.value.message and where in error.value.message
    assert client.files.list().data == []


def test_bad_batch_parameters_are_400s_naming_them(client: OpenAI, tmp_path: Path, train_file: Path) -> None:
    file_id = _upload(client, tmp_path / "in.jsonl", [_request(0)])
    fine_tune_file = client.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    cases = [
        ({"endpoint": "/v1/chat/completions"}, "endpoint"),
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"input_file_id": fine_tune_file}, "input_file_id"),
    ]
    for fields, param in cases:
        args = {"input_file_id": file_id, "endpoint": "/v1/completions", "completion_window": "24h", **fields}
        with pytest.raises(openai.BadRequestError) as error:
            client.batches.create(**args)  # type: ignore[arg-type]
        assert error.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/completions", completion_window="24h")
    assert client.batches.list().data == []


def test_cancel_and_expiry_of_waiting_batches(client: OpenAI, app: FastAPI, tmp_path: Path) -> None:
    file_id = _upload(client, tmp_path / "in.jsonl", [_request(0)])
    waiting = client.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
    )
    with pytest.raises(openai.ConflictError, match=waiting.id):
        client.files.delete(file_id)  # a live batch's input file stays
    cancelled = client.batches.cancel(waiting.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.output_file_id is None
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.batches.cancel(waiting.id)
    late = client.batches.create(input_file_id=file_id, endpoint="/v1/completions", completion_window="24h")
    with app.state.database.session() as session:
        batch_store.get_batch(session, owner="default", batch_id=late.id).expires_at = 0
    with app.state.database.session() as session:
        assert batch_store.expire_waiting(session) == [late.id]
    assert client.batches.retrieve(late.id).status == "expired"


def test_cancel_stops_a_running_batch_and_keeps_what_finished(settings: Settings, tmp_path: Path) -> None:
    slow = settings.model_copy(update={"batch_concurrency": 1})  # one request at a time: time to cancel
    with TestClient(create_app(slow, workers=1)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = _upload(client, tmp_path / "in.jsonl", [_request(i) for i in range(3000)])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 120
        while (running := client.batches.retrieve(batch.id)).request_counts.completed < 3:  # type: ignore[union-attr]
            assert running.status in ("validating", "in_progress") and time.monotonic() < deadline, running
            time.sleep(0.05)  # counts are stored as requests finish
        assert client.batches.cancel(batch.id).status == "cancelling"
        done = _wait(client, batch.id, ("cancelled",))
    counts = done.request_counts
    assert counts is not None and 3 <= counts.completed < 3000 and counts.completed + counts.failed == 3000
    assert len(_lines(client, done.output_file_id)) == counts.completed
    not_run = _lines(client, done.error_file_id)
    assert {line["error"]["code"] for line in not_run} == {"batch_cancelled"} and len(
        not_run
    ) == counts.failed


def test_a_batch_past_its_window_expires_and_keeps_what_finished(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings, workers=0)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = _upload(client, tmp_path / "in.jsonl", [_request(i) for i in range(3000)])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
        )
        with http.app.state.database.session() as session:  # type: ignore[attr-defined]
            batch_store.get_batch(session, owner="default", batch_id=batch.id).expires_at = (
                int(time.time()) + 2
            )
    slow = settings.model_copy(update={"batch_concurrency": 1})
    with TestClient(create_app(slow, workers=1)) as http:  # the same data dir: a worker takes the batch
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        done = _wait(client, batch.id, ("expired", "completed"))
    counts = done.request_counts
    assert done.status == "expired" and done.expired_at and counts is not None
    assert 0 < counts.completed < 3000 and counts.completed + counts.failed == 3000
    assert len(_lines(client, done.output_file_id)) == counts.completed
    assert {line["error"]["code"] for line in _lines(client, done.error_file_id)} == {"batch_expired"}


def test_a_batch_whose_worker_died_runs_again_to_completion(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings, workers=0)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = _upload(client, tmp_path / "in.jsonl", [_request(i) for i in range(5)])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
        )
        with http.app.state.database.session() as session:  # type: ignore[attr-defined]
            claimed = batch_store.claim_next(session, "dead-worker", skip_locked=False)
            assert claimed is not None and claimed.id == batch.id
            claimed.heartbeat_at = 0.0  # its worker stopped beating long ago
    with TestClient(create_app(settings, workers=1)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        done = _wait(client, batch.id, ("completed", "failed"))
    assert done.status == "completed" and done.request_counts.completed == 5  # type: ignore[union-attr]
    assert len(_lines(client, done.output_file_id)) == 5


def test_a_batch_handed_back_mid_run_resumes_keeping_the_answers_it_had(
    settings: Settings, tmp_path: Path
) -> None:
    slow = settings.model_copy(update={"batch_concurrency": 1})
    work = settings.data_dir / "work" / "batches"
    with TestClient(create_app(slow, workers=1)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        file_id = _upload(client, tmp_path / "in.jsonl", [_request(i) for i in range(400)])
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 120
        while (client.batches.retrieve(batch.id).request_counts.completed or 0) < 5:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.05)
    # The server stopped with the batch half done: it went back to the queue, its answers kept on disk.
    kept = [json.loads(line)["id"] for line in (work / batch.id / "output.jsonl").read_text().splitlines()]
    assert 5 <= len(kept) < 400
    with TestClient(create_app(settings, workers=1)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        done = _wait(client, batch.id, ("completed", "failed"))
        answers = _lines(client, done.output_file_id)
    assert done.status == "completed" and done.request_counts.completed == 400  # type: ignore[union-attr]
    assert sorted(a["custom_id"] for a in answers) == sorted(f"r{i}" for i in range(400))  # each once
    assert set(kept) <= {a["id"] for a in answers}  # the first run's answers, not run again
    assert not (work / batch.id).exists()

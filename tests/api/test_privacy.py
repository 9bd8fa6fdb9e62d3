"""Smaller leaks between organisations and to other users of the machine: another organisation's id as a
page cursor reads as an unknown id; the data directory, database and blobs are this user's only under a
permissive umask; a revoked key's open stream stops within the recheck interval."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tuneforge.api.app import create_app
from tuneforge.cli.serve import _announce_first_key
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store


@pytest.fixture
def secure_app(settings: Settings) -> FastAPI:
    update = {"auth": True, "requests_per_minute": 10_000, "key_recheck_s": 0.0}  # recheck on every chunk
    return create_app(settings.model_copy(update=update), workers=0)


def new_key(app: FastAPI, org: str) -> str:
    with app.state.database.session() as session:
        return key_store.create_key(session, org=org)[1]


def revoke(app: FastAPI, key: str) -> None:
    with app.state.database.session() as session:
        key_store.revoke(session, key_store.authenticate(session, key).id)  # type: ignore[union-attr]


def upload(client: OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def test_another_organisations_ids_as_cursors_page_as_unknown_ids(
    secure_app: FastAPI, train_file: Path
) -> None:
    with TestClient(secure_app) as http:
        ours = OpenAI(base_url="http://testserver/v1", api_key=new_key(secure_app, "ours"), http_client=http)
        theirs = OpenAI(
            base_url="http://testserver/v1", api_key=new_key(secure_app, "theirs"), http_client=http
        )
        # Theirs first: as a cursor, their job or event would end our pages before anything of ours.
        their_job = theirs.fine_tuning.jobs.create(model="tiny", training_file=upload(theirs, train_file))
        their_event = theirs.fine_tuning.jobs.list_events(their_job.id).data[0].id
        mine = [
            ours.fine_tuning.jobs.create(model="tiny", training_file=upload(ours, train_file)) for _ in "ab"
        ]

        def page(after: str) -> list[str]:
            return [job.id for job in ours.fine_tuning.jobs.list(after=after).data]

        def events(after: str) -> list[str]:
            return [event.id for event in ours.fine_tuning.jobs.list_events(mine[0].id, after=after).data]

        assert page(their_job.id) == page("ftjob-unknown") == [job.id for job in reversed(mine)]
        assert events(their_event) == events("ftevent-unknown") and len(events("ftevent-unknown")) == 2


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_the_data_directory_database_and_blobs_are_private(tmp_path: Path, train_file: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth=True, inference_process=False)
    app = create_app(settings, workers=0)
    _announce_first_key(app.state.database, settings)
    with TestClient(app) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key=settings.client_api_key(), http_client=http)
        file_id = upload(client, train_file)

    data = settings.data_dir
    dirs = [data, data / "blobs", data / "blobs" / "files"]
    files = [data / "tuneforge.db", data / "api_key", data / "blobs" / "files" / file_id]
    files += [p for p in (data / "tuneforge.db-wal", data / "tuneforge.db-shm") if p.exists()]
    assert {str(p): mode(p) for p in dirs + files} == {
        **{str(p): 0o700 for p in dirs},
        **{str(p): 0o600 for p in files},
    }


@pytest.mark.usefixtures("permissive_umask")
def test_an_existing_world_readable_data_directory_is_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "tuneforge.db").touch(mode=0o644)  # left by an earlier release
    create_app(Settings(data_dir=data, inference_process=False), workers=0)
    assert (mode(data), mode(data / "tuneforge.db")) == (0o700, 0o600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app behind a real HTTP server in a thread: TestClient would buffer a stream whole."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_revoked_keys_completion_stream_stops_with_an_error(secure_app: FastAPI) -> None:
    key = new_key(secure_app, "acme")
    with serving(secure_app) as base:
        client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        stream = client.completions.create(
            model="tiny", prompt="Once upon a time", max_tokens=900, temperature=0, stream=True
        )
        chunks = iter(stream)
        next(chunks)
        revoke(secure_app, key)
        with pytest.raises(openai.APIError, match="revoked"):
            received = sum(1 for _ in chunks)
            pytest.fail(f"the stream ran to its end ({received} more chunks) after the key was revoked")


def test_a_revoked_keys_fine_tune_event_stream_stops_with_an_error(
    secure_app: FastAPI, tmp_path: Path
) -> None:
    key = new_key(secure_app, "acme")
    headers = {"Authorization": f"Bearer {key}"}
    with serving(secure_app) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        rows = [{"prompt": "a ->", "completion": " b"}]
        path = write_jsonl(tmp_path / "one.jsonl", rows)
        file_id = http.post(
            "/v1/files", files={"file": path.open("rb")}, data={"purpose": "fine-tune"}
        ).json()["id"]
        fine_tune = http.post("/v1/fine-tunes", json={"training_file": file_id, "model": "tiny"}).json()
        # No worker runs: the job stays queued, so the stream would follow it for ever.
        with http.stream("GET", f"/v1/fine-tunes/{fine_tune['id']}/events", params={"stream": "true"}) as r:
            lines = (line[6:] for line in r.iter_lines() if line.startswith("data: "))
            assert "Created fine-tuning job" in json.loads(next(lines))["message"]
            revoke(secure_app, key)
            rest = list(lines)  # a read timeout here: the stream kept going
    assert rest[-1] == "[DONE]"
    error = json.loads(rest[-2])["error"]
    assert error["code"] == "invalid_api_key" and "revoked" in error["message"]

"""API keys and tenancy: no key or a wrong one is a 401; another organisation sees 404 for everything
that is not its own, in lists too; revocation and rate limits apply on the next request."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tuneforge import ids
from tuneforge.api.app import create_app
from tuneforge.catalog import resolve
from tuneforge.cli.main import main
from tuneforge.cli.serve import _announce_first_key
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store
from tuneforge.store.tables import CheckpointRow, ModelRow
from tuneforge.training.base_models import materialize


@pytest.fixture
def secure_app(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"auth": True, "requests_per_minute": 1000}), workers=0)


@pytest.fixture
def http(secure_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(secure_app) as client:
        yield client


def new_key(app: FastAPI, org: str) -> str:
    with app.state.database.session() as session:
        return key_store.create_key(session, org=org)[1]


def sdk(http: TestClient, key: str) -> OpenAI:
    return OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


def test_missing_and_wrong_keys_get_401_envelopes(http: TestClient, secure_app: FastAPI) -> None:
    missing = http.get("/v1/files")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(http, "tf-wrong").files.list()
    assert sdk(http, new_key(secure_app, "acme")).files.list().data == []
    assert http.get("/health").status_code == 200  # health needs no key


def test_revoked_key_stops_on_the_next_request(http: TestClient, secure_app: FastAPI) -> None:
    key = new_key(secure_app, "acme")
    client = sdk(http, key)
    client.models.list()
    with secure_app.state.database.session() as session:
        key_id = key_store.authenticate(session, key).id  # type: ignore[union-attr]
        key_store.revoke(session, key_id)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_requests_per_minute_limit_is_a_429_with_retry_after(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth": True, "requests_per_minute": 3}), workers=0)
    with TestClient(app) as http:
        headers = {"Authorization": f"Bearer {new_key(app, 'acme')}"}
        statuses = [http.get("/v1/models", headers=headers).status_code for _ in range(4)]
        limited = http.get("/v1/models", headers=headers)
    assert statuses == [200, 200, 200, 429]
    assert (
        limited.json()["error"]["code"] == "rate_limit_exceeded" and int(limited.headers["Retry-After"]) >= 1
    )


def test_oversized_bodies_are_413(settings: Settings, tmp_path: Path) -> None:
    app = create_app(
        settings.model_copy(update={"max_request_bytes": 1000, "max_upload_bytes": 2000}), workers=0
    )
    with TestClient(app) as http:
        big_json = http.post("/v1/fine_tuning/jobs", content=b"{" + b" " * 5000 + b"}")
        upload = http.post(
            "/v1/files", files={"file": ("a.jsonl", b"x" * 100_000)}, data={"purpose": "fine-tune"}
        )
        assert http.get("/v1/files").json()["data"] == []
    assert big_json.status_code == 413 and upload.status_code == 413
    assert upload.json()["error"]["code"] == "payload_too_large"


def test_first_serve_creates_one_key_readable_only_by_its_owner(
    settings: Settings, secure_app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    _announce_first_key(secure_app.state.database, settings)
    _announce_first_key(secure_app.state.database, settings)

    key = settings.local_key_path.read_text().strip()
    assert capsys.readouterr().out.count(key) == 1
    assert stat.S_IMODE(settings.local_key_path.stat().st_mode) == 0o600
    with secure_app.state.database.session() as session:
        assert key_store.authenticate(session, key).owner == "default"  # type: ignore[union-attr]
        assert len(key_store.list_keys(session)) == 1


def test_no_auth_is_refused_on_a_non_loopback_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "--no-auth is refused on 0.0.0.0" in capsys.readouterr().err


def test_keys_cli_creates_lists_and_revokes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["keys", "create", "--org", "acme", "--name", "ci", "--data-dir", str(tmp_path)]) == 0
    created = capsys.readouterr().out
    key_id = created.split()[1]
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    assert "acme" in capsys.readouterr().out
    assert main(["keys", "revoke", key_id, "--data-dir", str(tmp_path)]) == 0
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "create", "--org", "bad org!", "--data-dir", str(tmp_path)]) == 2


def add_model(app: FastAPI, org: str, job_id: str) -> tuple[str, str]:
    name, checkpoint = f"ft:tiny:{org}::abcd1234", f"ft:tiny:{org}::abcd1234:ckpt-step-5"
    with app.state.database.session() as session:
        now = ids.now()
        session.add(
            ModelRow(
                id=name,
                owner=org,
                created_at=now,
                job_id=job_id,
                base_model="tiny",
                path="jobs/x/out",
                deleted=False,
            )
        )
        session.add(
            CheckpointRow(
                id=ids.new_id("ftckpt"), job_id=job_id, owner=org, step=5, created_at=now,
                model_name=checkpoint, metrics={}, path="jobs/x/ckpt",
            )
        )  # fmt: skip
    return name, checkpoint


def test_another_organisation_sees_404_for_everything_and_changes_nothing(
    http: TestClient, secure_app: FastAPI, train_file: Path
) -> None:
    alice, bob = sdk(http, new_key(secure_app, "alice")), sdk(http, new_key(secure_app, "bob"))
    bob_headers = {"Authorization": f"Bearer {bob.api_key}"}
    file = alice.files.create(file=train_file.open("rb"), purpose="fine-tune")
    job = alice.fine_tuning.jobs.create(model="tiny", training_file=file.id)
    legacy = http.post(
        "/v1/fine-tunes",
        json={"training_file": file.id},
        headers={"Authorization": f"Bearer {alice.api_key}"},
    ).json()
    model, checkpoint = add_model(secure_app, "alice", job.id)
    upload = alice.uploads.create(filename="a.jsonl", purpose="fine-tune", bytes=10, mime_type="x")
    batch_file = alice.files.create(file=("b.jsonl", _batch_line("tiny")), purpose="batch")
    batch = alice.batches.create(
        input_file_id=batch_file.id, endpoint="/v1/completions", completion_window="24h"
    )
    permissions = alice.fine_tuning.checkpoints.permissions

    not_found = [
        lambda: bob.files.retrieve(file.id),
        lambda: bob.files.content(file.id),
        lambda: bob.files.delete(file.id),
        lambda: bob.fine_tuning.jobs.retrieve(job.id),
        lambda: bob.fine_tuning.jobs.cancel(job.id),
        lambda: bob.fine_tuning.jobs.list_events(job.id),
        lambda: bob.fine_tuning.jobs.checkpoints.list(job.id),
        lambda: bob.models.retrieve(model),
        lambda: bob.models.retrieve(checkpoint),
        lambda: bob.models.delete(model),
        lambda: bob.completions.create(model=model, prompt="x", max_tokens=1),
        lambda: bob.completions.create(model=checkpoint, prompt="x", max_tokens=1),
        lambda: bob.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}]),
        lambda: bob.uploads.parts.create(upload_id=upload.id, data=b"12345"),
        lambda: bob.uploads.complete(upload_id=upload.id, part_ids=[]),
        lambda: bob.uploads.cancel(upload.id),
        lambda: bob.batches.retrieve(batch.id),
        lambda: bob.batches.cancel(batch.id),
        lambda: bob.batches.create(
            input_file_id=batch_file.id, endpoint="/v1/completions", completion_window="24h"
        ),
        lambda: bob.fine_tuning.checkpoints.permissions.retrieve(model),
        lambda: bob.fine_tuning.checkpoints.permissions.create(model, project_ids=["bob"]),
        lambda: bob.fine_tuning.checkpoints.permissions.delete(
            "cp-x", fine_tuned_model_checkpoint=checkpoint
        ),
    ]
    for call in not_found:
        with pytest.raises(openai.NotFoundError):
            call()
    for path in (f"/v1/files/{file.id}/report", f"/v1/fine_tuning/jobs/{job.id}/curves.png"):
        assert http.get(path, headers=bob_headers).status_code == 404
    bobs_file = bob.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    evaluation = http.post(
        "/v1/tuneforge/evaluations", json={"model": model, "file": bobs_file}, headers=bob_headers
    )
    assert evaluation.status_code == 404 and evaluation.json()["error"]["param"] == "model"
    for path in ("", "/events", "/events?stream=true"):
        assert http.get(f"/v1/fine-tunes/{legacy['id']}{path}", headers=bob_headers).status_code == 404
    assert http.post(f"/v1/fine-tunes/{legacy['id']}/cancel", headers=bob_headers).status_code == 404
    assert http.get("/v1/fine-tunes", headers=bob_headers).json()["data"] == []
    assert [f.id for f in bob.files.list().data] == [bobs_file] and bob.fine_tuning.jobs.list().data == []
    assert model not in {m.id for m in bob.models.list().data}
    for fields in ({"training_file": file.id}, {"validation_file": file.id}, {"model": model}):
        with pytest.raises(openai.BadRequestError):
            bob.fine_tuning.jobs.create(**{"model": "tiny", "training_file": "file-none", **fields})  # type: ignore[arg-type]

    bobs_batch_file = bob.files.create(file=("b.jsonl", _batch_line(model)), purpose="batch").id
    with pytest.raises(openai.BadRequestError, match="does not exist"):
        bob.batches.create(input_file_id=bobs_batch_file, endpoint="/v1/completions", completion_window="24h")
    assert bob.batches.list().data == []

    assert alice.files.retrieve(file.id).id == file.id
    assert alice.batches.retrieve(batch.id).status == "validating" and permissions.retrieve(model).data == []
    assert alice.fine_tuning.jobs.retrieve(job.id).status == "queued"
    assert alice.models.retrieve(model).id == model
    assert len(alice.fine_tuning.jobs.list_events(job.id).data) == 2


def test_limits_on_examples_per_file_and_live_jobs(settings: Settings, train_file: Path) -> None:
    limited = settings.model_copy(update={"max_examples_per_file": 10, "max_live_jobs_per_org": 1})
    with TestClient(create_app(limited, workers=0)) as http:
        client = sdk(http, "unused")
        with pytest.raises(openai.BadRequestError, match="30 examples"):
            client.files.create(file=train_file.open("rb"), purpose="fine-tune")
        small = train_file.parent / "small.jsonl"
        small.write_text("".join(train_file.read_text().splitlines(keepends=True)[:5]))
        file_id = client.files.create(file=small.open("rb"), purpose="fine-tune").id
        client.fine_tuning.jobs.create(model="tiny", training_file=file_id)
        with pytest.raises(openai.RateLimitError, match="queued or running"):
            client.fine_tuning.jobs.create(model="tiny", training_file=file_id)
        assert len(client.fine_tuning.jobs.list().data) == 1


def test_a_filename_is_only_a_label(
    http: TestClient, secure_app: FastAPI, train_file: Path, settings: Settings
) -> None:
    client = sdk(http, new_key(secure_app, "acme"))
    uploaded = client.files.create(
        file=("../../etc/passwd.jsonl", train_file.read_bytes()), purpose="fine-tune"
    )
    assert uploaded.filename == "../../etc/passwd.jsonl"
    stored = sorted(p.name for p in (settings.data_dir / "blobs" / "files").iterdir())
    assert stored == [uploaded.id]


def _batch_line(model: str) -> bytes:
    body = {"model": model, "prompt": "x", "max_tokens": 1}
    return (
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": body}) + "\n"
    ).encode()


def add_servable_model(app: FastAPI, settings: Settings, org: str) -> str:
    """A fine-tuned model of `org` that really serves: the built-in tiny model's directory as its weights."""
    source = Path(materialize(resolve("tiny", settings), settings))
    (settings.data_dir / "blobs" / "models").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "blobs" / "models" / "shared").symlink_to(source, target_is_directory=True)
    name = f"ft:tiny:{org}:shared:abcd1234"
    with app.state.database.session() as session:
        session.add(
            ModelRow(
                id=name, owner=org, created_at=ids.now(), job_id="ftjob-x", base_model="tiny",
                path="models/shared", deleted=False,
            )
        )  # fmt: skip
    return name


def test_a_shared_checkpoint_is_usable_by_its_grantee_only_until_revoked(
    http: TestClient, secure_app: FastAPI, settings: Settings, train_file: Path
) -> None:
    alice, bob, carol = (sdk(http, new_key(secure_app, org)) for org in ("alice", "bob", "carol"))
    model = add_servable_model(secure_app, settings, "alice")
    bobs_file = bob.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    carols_file = carol.files.create(file=train_file.open("rb"), purpose="fine-tune").id
    permissions = alice.fine_tuning.checkpoints.permissions

    granted = permissions.create(model, project_ids=["bob"]).data
    assert [p.project_id for p in granted] == ["bob"] and granted[0].object == "checkpoint.permission"
    assert [p.id for p in permissions.create(model, project_ids=["bob"]).data] == [granted[0].id]  # once
    assert [p.project_id for p in permissions.retrieve(model).data] == ["bob"]
    assert permissions.retrieve(model, project_id="carol").data == []

    assert len(bob.completions.create(model=model, prompt="x", max_tokens=1).choices) == 1
    assert bob.fine_tuning.jobs.create(model=model, training_file=bobs_file).status == "queued"
    with pytest.raises(openai.NotFoundError):
        bob.fine_tuning.checkpoints.permissions.retrieve(model)  # a grantee does not manage it
    with pytest.raises(openai.NotFoundError):
        carol.completions.create(model=model, prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        carol.fine_tuning.jobs.create(model=model, training_file=carols_file)

    deleted = permissions.delete(granted[0].id, fine_tuned_model_checkpoint=model)
    assert deleted.deleted and deleted.id == granted[0].id and permissions.retrieve(model).data == []
    with pytest.raises(openai.NotFoundError):
        bob.completions.create(model=model, prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        bob.fine_tuning.jobs.create(model=model, training_file=bobs_file)
    with pytest.raises(openai.NotFoundError):
        permissions.delete(granted[0].id, fine_tuned_model_checkpoint=model)


def test_bad_permission_requests_are_named(
    http: TestClient, secure_app: FastAPI, settings: Settings, train_file: Path
) -> None:
    alice = sdk(http, new_key(secure_app, "alice"))
    file = alice.files.create(file=train_file.open("rb"), purpose="fine-tune")
    job = alice.fine_tuning.jobs.create(model="tiny", training_file=file.id)
    model = add_servable_model(secure_app, settings, "alice")
    for project_ids, param in (
        ([], "project_ids"),
        (["alice"], "project_ids.0"),
        (["bob", " "], "project_ids.1"),
    ):
        with pytest.raises(openai.BadRequestError) as error:
            alice.fine_tuning.checkpoints.permissions.create(model, project_ids=project_ids)
        assert error.value.body["param"] == param  # type: ignore[index]
    _, checkpoint = add_model(secure_app, "alice", job.id)  # a checkpoint name can be shared too
    shared = alice.fine_tuning.checkpoints.permissions.create(checkpoint, project_ids=["bob", "carol"])
    assert sorted(p.project_id for p in shared.data) == ["bob", "carol"]
    with pytest.raises(openai.NotFoundError) as missing:
        alice.fine_tuning.checkpoints.permissions.create("ft:tiny:alice::nope", project_ids=["bob"])
    assert missing.value.body["param"] == "fine_tuned_model_checkpoint"  # type: ignore[index]

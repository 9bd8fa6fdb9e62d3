"""Fine-tuned model names are unique: two legacy fine-tunes of one organisation created in the same second
with the same suffix both succeed, under names one second apart in OpenAI's format; a name taken after
all fails the job once, saying so, instead of three retries that blame a stalled worker."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.api.conftest import write_jsonl
from tuneforge import ids
from tuneforge.store import jobs as job_store
from tuneforge.store.db import Database
from tuneforge.store.tables import JobRow, ModelRow
from tuneforge.worker.pool import WorkerPool

LEGACY_NAME = re.compile(r"^tiny:ft-default:twin-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$")


@pytest.fixture
def file_id(http: TestClient, tmp_path: Path) -> str:
    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(8)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    response = http.post("/v1/files", files={"file": path.open("rb")}, data={"purpose": "fine-tune"})
    return str(response.json()["id"])


def create_twins(http: TestClient, file_id: str) -> list[dict[str, object]]:
    while time.time() % 1 > 0.1:  # start early in a second, so that both creates fall within it
        time.sleep(0.05)
    body = {"training_file": file_id, "model": "tiny", "suffix": "twin", "n_epochs": 1, "batch_size": 8}
    twins = [http.post("/v1/fine-tunes", json=body).json() for _ in range(2)]
    assert twins[0]["created_at"] == twins[1]["created_at"], "the two creates straddled a second"
    return twins


def run_queue(app: FastAPI) -> int:
    return WorkerPool(app.state.settings, app.state.database, app.state.blobs).run_one_shot()


@pytest.mark.slow
def test_two_legacy_fine_tunes_in_one_second_get_distinct_names_and_both_succeed(
    app: FastAPI, http: TestClient, file_id: str
) -> None:
    twins = create_twins(http, file_id)

    assert run_queue(app) == 2

    done = [http.get(f"/v1/fine-tunes/{twin['id']}").json() for twin in twins]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"], [d["events"] for d in done]
    names = [str(d["fine_tuned_model"]) for d in done]
    assert all(LEGACY_NAME.match(name) for name in names), names
    stamp = int(str(twins[0]["created_at"]))
    assert names == [ids.legacy_model_name("tiny", "default", "twin", stamp + k) for k in (0, 1)]
    listed = {m["id"] for m in http.get("/v1/models").json()["data"]}
    assert set(names) <= listed


@pytest.mark.slow
def test_a_name_taken_at_registration_fails_the_job_once_and_says_why(
    app: FastAPI, http: TestClient, file_id: str
) -> None:
    body = {"training_file": file_id, "model": "tiny", "suffix": "twin", "n_epochs": 1, "batch_size": 8}
    fine_tune = http.post("/v1/fine-tunes", json=body).json()
    database: Database = app.state.database
    with database.session() as session:  # a model registered under that name before names were reserved
        name = session.get(JobRow, fine_tune["id"]).model_name  # type: ignore[union-attr]
        session.add(
            ModelRow(id=name, owner="default", created_at=0, job_id="ft-old", base_model="tiny", path="x")
        )

    assert run_queue(app) == 1

    failed = http.get(f"/v1/fine-tunes/{fine_tune['id']}").json()
    assert failed["status"] == "failed"
    messages = [e["message"] for e in failed["events"]]
    assert any(f"'{name}' is already taken" in m for m in messages), messages
    assert not any("retrying" in m or "stopped responding" in m for m in messages), messages


def test_a_name_taken_by_a_concurrent_create_moves_on_to_the_next(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    stamp = 1_700_000_000
    taken = ids.legacy_model_name("tiny", "default", "twin", stamp)

    raced: list[bool] = []

    def another_create_commits_first(session: Session, *_: object) -> None:
        if raced:
            return
        raced.append(True)  # once: between our check of the name and our insert
        with database.session() as other:
            job_store.add_job(other, model_name=taken, **_job_fields("ft-other"))

    with database.session() as session:
        event.listen(session, "before_flush", another_create_commits_first)
        names = ids.legacy_model_names("tiny", "default", "twin", stamp)
        row = job_store.add_named_job(session, names, **_job_fields("ft-ours"))
    with database.session() as session:
        stored = dict(session.execute(select(JobRow.id, JobRow.model_name)).tuples().all())
    assert stored == {
        "ft-other": taken,
        "ft-ours": ids.legacy_model_name("tiny", "default", "twin", stamp + 1),
    }
    assert row.model_name == stored["ft-ours"]
    database.close()


def _job_fields(job_id: str) -> dict[str, object]:
    return {
        "id": job_id, "api": "fine-tunes", "owner": "default", "model": "tiny", "training_file": "file-x",
        "validation_file": None, "hyperparameters": {}, "suffix": "twin", "seed": 1, "integrations": [],
        "status": "queued",
    }  # fmt: skip

"""A finished job in a fresh store: results CSV, training and validation files, and a model directory."""

from __future__ import annotations

import glob
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tuneforge import ids
from tuneforge.settings import Settings
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.blobs import open_blob_store
from tuneforge.store.db import open_database
from tuneforge.store.tables import ModelRow

RESULTS = (
    "step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy,"
    "validation_loss,validation_sequence_accuracy,validation_token_accuracy\n"
    "1,100,4,2.5,0,0.3,,,\n"
    "2,200,8,1.5,0.25,0.6,1.7,0.2,0.5\n"
    "3,300,12,0.9,0.5,0.8,1.1,0.4,0.7\n"
)
RESOLVED = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.1, "method": "full"}


@dataclass
class FinishedJob:
    settings: Settings
    job_id: str
    model: str


def add_finished_job(
    settings: Settings, integrations: list[dict[str, Any]] | None = None, *, owner: str = "default"
) -> FinishedJob:
    database = open_database(settings)
    blobs = open_blob_store(settings)
    job_id, train_id, results_id = ids.new_id("ftjob"), ids.new_id("file"), ids.new_id("file")
    blobs.put_bytes(f"files/{train_id}", b'{"prompt": "a ->", "completion": " b"}\n')
    blobs.put_bytes(f"files/{results_id}", RESULTS.encode())
    blobs.put_bytes(f"jobs/{job_id}/output/tuneforge.json", b"{}")
    model = f"ft:tiny:{owner}::{job_id[6:14]}"
    with database.session() as session:
        for fid, purpose in ((train_id, "fine-tune"), (results_id, "fine-tune-results")):
            file_store.add_file(
                session,
                id=fid,
                owner=owner,
                filename="x",
                purpose=purpose,
                bytes=1,
                sha256="",
                created_at=ids.now(),
                status="processed",
                summary=None,
            )
        job_store.add_job(
            session,
            id=job_id,
            api="fine_tuning.jobs",
            owner=owner,
            model="tiny",
            training_file=train_id,
            validation_file=None,
            hyperparameters={"n_epochs": "auto"},
            resolved=RESOLVED,
            suffix=None,
            seed=3,
            integrations=integrations or [],
            status="succeeded",
            fine_tuned_model=model,
            result_files=[results_id],
            trained_tokens=300,
        )
        model_store.add_model(
            session,
            ModelRow(
                id=model,
                owner=owner,
                created_at=ids.now(),
                job_id=job_id,
                base_model="tiny",
                path=f"jobs/{job_id}/output",
                deleted=False,
            ),
        )
    database.engine.dispose()
    return FinishedJob(settings, job_id, model)


@pytest.fixture
def finished_job(settings: Settings) -> FinishedJob:
    return add_finished_job(settings)


def wandb_records(run_dir: Path) -> dict[str, list[Any]]:
    """The records of an offline run's `.wandb` file, by type, once its writer has flushed the run's end
    (W&B's service process writes the file asynchronously)."""
    for _ in range(100):
        records = _read_wandb_file(Path(glob.glob(str(run_dir / "run-*.wandb"))[0]))
        if "run" in records and "exit" in records:
            break
        time.sleep(0.1)
    return records


def _read_wandb_file(path: Path) -> dict[str, list[Any]]:
    """A LevelDB-style log of protobuf records: a 7-byte header, then 32 KiB blocks of framed chunks."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    payloads, pending, pos, block = [], b"", 7, 32768  # 7-byte file header, then 32 KiB blocks
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            payloads.append(pending)
    records: dict[str, list[Any]] = {}
    for payload in payloads:
        record = pb.Record()
        record.ParseFromString(payload)
        kind_name = record.WhichOneof("record_type")
        records.setdefault(kind_name, []).append(getattr(record, kind_name))
    return records


def history(records: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [
        {item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json) for item in h.item}
        for h in records.get("history", [])
    ]


def config(records: dict[str, list[Any]]) -> dict[str, Any]:
    run = records["run"][0]
    found = {u.key: json.loads(u.value_json) for u in run.config.update}
    for c in records.get("config", []):
        found.update({u.key: json.loads(u.value_json) for u in c.update})
    return found


def summary(records: dict[str, list[Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for s in records.get("summary", []):
        found.update(
            {(u.nested_key[0] if u.nested_key else u.key): json.loads(u.value_json) for u in s.update}
        )
    return found

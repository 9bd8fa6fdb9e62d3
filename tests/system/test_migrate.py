"""`tuneforge migrate` between two real `tuneforge serve` processes, one playing the source organisation
(it speaks the same API as OpenAI): files byte-equal, jobs recreated with the same settings, a
supervised→DPO chain kept, a golden report whose classifier agrees, resume after `kill -9` mid-copy, and
a second run that creates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tests.system.conftest import FAST_RECOVERY, Server
from tuneforge.samples.styles import TRAIN_WORDS, preference_pairs

pytestmark = [pytest.mark.system, pytest.mark.slow]

ENV = {**FAST_RECOVERY, "TUNEFORGE_TRAIN_THREADS": "1"}  # one thread each side: equal seeds, equal sums
LABELS = ("negative", "positive")


def reviews(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"prompt": f"review {i}: {'great' if i % 2 else 'awful'} ->", "completion": f" {LABELS[i % 2]}"}
        for i in range(start, start + n)
    ]


@pytest.fixture
def servers(tmp_path: Path, shared_models_dir: Path) -> Iterator[tuple[Server, Server]]:
    started = []
    for name in ("source", "target"):
        data = tmp_path / name
        data.mkdir()
        (data / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
        started.append(Server(data, workers=1, env=ENV))
    yield started[0], started[1]
    for server in started:
        server.stop()


def sdk(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)


def finish(client: OpenAI, job_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            assert job.status == "succeeded" and job.fine_tuned_model, job
            return job.fine_tuned_model
        time.sleep(0.5)
    raise TimeoutError(job_id)


def migrate(source: Server, target: Server, *extra: str) -> subprocess.Popen[str]:
    args = ["--from-base-url", f"{source.base}/v1", "--from-api-key", "sk-source-secret"]
    args += [
        "--to-api-base",
        f"{target.base}/v1",
        "--to-api-key",
        "unused",
        "--data-dir",
        str(target.data_dir),
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "tuneforge", "migrate", *args, *extra],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def completed(process: subprocess.Popen[str], timeout: float = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def upload(client: OpenAI, path: Path, rows: list[dict[str, object]]) -> str:
    return client.files.create(file=write_jsonl(path, rows).open("rb"), purpose="fine-tune").id


def test_migrate_copies_files_recreates_a_chain_and_reports_agreement(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    source_server, target_server = servers
    source, target = sdk(source_server), sdk(target_server)
    train = upload(source, tmp_path / "train.jsonl", reviews(120))  # 45 steps: enough to learn the labels
    valid = upload(source, tmp_path / "valid.jsonl", reviews(8, start=100))
    pairs = upload(source, tmp_path / "pairs.jsonl", preference_pairs(TRAIN_WORDS[:8]))
    for k in range(3):  # bigger files, so a kill lands while files are still being copied
        upload(source, tmp_path / f"extra{k}.jsonl", reviews(3000, start=1000 * k))
    supervised = source.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        validation_file=valid,
        suffix="cls",
        seed=7,
        metadata={"team": "search"},
        hyperparameters={"n_epochs": 3},
    )
    parent_model = finish(source, supervised.id)
    dpo = source.fine_tuning.jobs.create(
        model=parent_model,
        training_file=pairs,
        seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )
    finish(source, dpo.id)
    golden = write_jsonl(
        tmp_path / "golden.jsonl", [{"prompt": r["prompt"], "max_tokens": 2} for r in reviews(8)]
    )
    state = tmp_path / "state.json"

    refused = completed_with_error(migrate(source_server, target_server, "--state", str(state)))
    assert "tiny" in refused and "--map tiny=" in refused and "sk-source-secret" not in refused
    plan = completed(migrate(source_server, target_server, "--map", "tiny=tiny", "--dry-run"))
    assert supervised.id in plan and dpo.id in plan and f"the new model of {supervised.id}" in plan
    assert "Estimated training here" in plan and not target.files.list().data  # a dry run changes nothing

    killed = kill_mid_copy(
        migrate(source_server, target_server, "--map", "tiny=tiny", "--state", str(state)), state
    )
    assert 1 <= killed < 6
    run = ["--map", "tiny=tiny", "--golden", str(golden), "--state", str(state)]
    out = completed(migrate(source_server, target_server, *run))
    assert "sk-source-secret" not in out + state.read_text()

    ids = json.loads(state.read_text())
    assert len(fine_tune_files(target)) == 6  # each source file once, even the one being uploaded at the kill
    for source_id, copied in ids["files"].items():
        assert target.files.content(copied["target_id"]).read() == source.files.content(source_id).read()

    old_sup, new_sup = source.fine_tuning.jobs.retrieve(supervised.id), target_job(target, ids, supervised.id)
    assert new_sup.model == "tiny" and new_sup.seed == 7 and new_sup.fine_tuned_model
    assert new_sup.fine_tuned_model.split(":")[3] == "cls"
    assert new_sup.metadata == {"team": "search", "migrated_from": supervised.id}
    assert new_sup.validation_file == ids["files"][valid]["target_id"]
    assert new_sup.hyperparameters.model_dump() == old_sup.hyperparameters.model_dump()
    old_dpo, new_dpo = source.fine_tuning.jobs.retrieve(dpo.id), target_job(target, ids, dpo.id)
    assert new_dpo.model == new_sup.fine_tuned_model  # the chain starts from the migrated supervised model
    assert new_dpo.method and old_dpo.method and new_dpo.method.type == "dpo" and new_dpo.seed == 3
    assert new_dpo.method.model_dump()["dpo"] == old_dpo.method.model_dump()["dpo"]

    old_answers = (state.parent / "golden" / f"{supervised.id}.source.jsonl").read_text().splitlines()
    assert {json.loads(a)["text"] for a in old_answers} == {" ne", " po"}  # a classifier, both labels
    report = json.loads((state.parent / "reports" / f"{supervised.id}.json").read_text())
    assert report["task"] == "classification" and report["n"] == 8
    assert report["agreement"] >= 0.875, report  # trained alike, the same seed: the same labels
    assert (state.parent / "reports" / f"{supervised.id}.png").read_bytes()[:4] == b"\x89PNG"
    assert "agreement" in out and "confusion" in out

    again = completed(migrate(source_server, target_server, *run))
    assert len(fine_tune_files(target)) == 6 and len(target.fine_tuning.jobs.list().data) == 2
    assert "copied" not in again and "recreated" not in again


def fine_tune_files(client: OpenAI) -> list[str]:
    return [f.id for f in client.files.list() if f.purpose == "fine-tune"]  # not the jobs' results files


def target_job(target: OpenAI, ids: dict[str, dict[str, dict[str, str]]], source_id: str):  # type: ignore[no-untyped-def]
    return target.fine_tuning.jobs.retrieve(ids["jobs"][source_id]["target_id"])


def completed_with_error(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 2, out
    return out


def kill_mid_copy(process: subprocess.Popen[str], state: Path) -> int:
    """SIGKILL as soon as the state shows a copied file; returns how many it had copied."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if state.is_file():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return len(json.loads(state.read_text())["files"])
        time.sleep(0.01)
    raise AssertionError(f"migrate ended ({process.returncode}) before a file was copied")

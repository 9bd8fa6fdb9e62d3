"""`tuneforge migrate` between two in-process apps served over real HTTP (uvicorn in a thread), with no
worker: jobs stay queued, so these run in seconds. Training, chains and the golden report are in
tests/system/test_migrate.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tests.api.test_privacy import serving
from tuneforge.api.app import create_app
from tuneforge.cli.main import main
from tuneforge.migration.golden import GoldenLine, ask
from tuneforge.settings import Settings


@pytest.fixture
def source(settings: Settings) -> Iterator[str]:
    with serving(create_app(settings, workers=0)) as base:
        yield f"{base}/v1"


@pytest.fixture
def target(settings: Settings, tmp_path: Path) -> Iterator[str]:
    data = tmp_path / "target"
    data.mkdir()
    (data / "base-models").symlink_to(settings.models_dir, target_is_directory=True)
    with serving(create_app(settings.model_copy(update={"data_dir": data}), workers=0)) as base:
        yield f"{base}/v1"


def migrate(source: str, target: str, tmp_path: Path, *extra: str) -> int:
    flags = ["--from-base-url", source, "--from-api-key", "sk-source", "--to-api-base", target]
    return main(
        ["migrate", *flags, "--to-api-key", "unused", "--state", str(tmp_path / "state.json"), *extra]
    )


def test_queued_jobs_and_legacy_fine_tunes_are_recreated_once(
    source: str, target: str, tmp_path: Path
) -> None:
    src, dst = OpenAI(base_url=source, api_key="x"), OpenAI(base_url=target, api_key="x")
    rows = [{"prompt": f"q{i} ->", "completion": f" a{i % 2}"} for i in range(20)]
    train = src.files.create(file=write_jsonl(tmp_path / "t.jsonl", rows).open("rb"), purpose="fine-tune").id
    job = src.fine_tuning.jobs.create(
        model="tiny",
        training_file=train,
        suffix="q",
        seed=5,
        hyperparameters={"n_epochs": 2, "batch_size": "auto"},
    )
    legacy = src.post(
        "/fine-tunes",
        body={
            "training_file": train,
            "model": "tiny",
            "n_epochs": 3,
            "prompt_loss_weight": 0.1,
            "suffix": "old",
        },
        cast_to=object,
    )
    ids = [job.id, legacy["id"]]  # type: ignore[index]

    assert migrate(source, target, tmp_path, "--map", "tiny=tiny", "--jobs", *ids) == 0
    assert migrate(source, target, tmp_path, "--map", "tiny=tiny", "--jobs", *ids) == 0  # nothing new

    state = json.loads((tmp_path / "state.json").read_text())
    assert [f.id for f in dst.files.list()] == [state["files"][train]["target_id"]]
    assert dst.files.content(state["files"][train]["target_id"]).read() == src.files.content(train).read()
    jobs = dst.fine_tuning.jobs.list().data
    assert len(jobs) == 1 and jobs[0].id == state["jobs"][job.id]["target_id"] and jobs[0].seed == 5
    assert jobs[0].method and jobs[0].method.model_dump()["supervised"]["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": "auto",  # still "auto": the source never ran it
        "learning_rate_multiplier": "auto",
    }
    fine_tunes = dst.get("/fine-tunes", cast_to=object)["data"]  # type: ignore[index]
    assert [f["id"] for f in fine_tunes] == [state["jobs"][legacy["id"]]["target_id"]]  # type: ignore[index]
    assert (
        fine_tunes[0]["hyperparams"]["n_epochs"] == 3
        and fine_tunes[0]["hyperparams"]["prompt_loss_weight"] == 0.1
    )


def test_a_source_key_without_access_is_one_clear_error(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = create_app(settings.model_copy(update={"auth": True}), workers=0)
    with serving(source) as base:
        flags = ["--from-base-url", f"{base}/v1", "--from-api-key", "sk-not-a-key-0123", "--dry-run"]
        code = main(["migrate", *flags, "--data-dir", str(tmp_path / "target")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"Error: the source key has no access to {base}/v1 (401); check --from-api-key"
    assert "sk-not-a-key" not in err


def test_golden_answers_carry_logprobs_from_both_apis(source: str) -> None:
    lines = [
        GoldenLine(prompt="Once upon a time", messages=None, max_tokens=3),
        GoldenLine(prompt=None, messages=[{"role": "user", "content": "hello"}], max_tokens=3),
    ]
    client = OpenAI(base_url=source, api_key="x")
    first, again = ask(client, "tiny", lines), ask(client, "tiny", lines)
    assert first == again  # temperature 0: the recording is reproducible
    for answer in first:
        assert answer["text"] and len(answer["top_logprobs"]) == 3  # one entry per generated token
        assert all(len(top) == 5 and all(v <= 0 for v in top.values()) for top in answer["top_logprobs"])

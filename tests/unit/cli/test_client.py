"""`tuneforge api …` against an in-process server: the commands' output, upload reuse, following a
finished fine-tune, and the one-line errors (unknown id, bad argument, server down)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tuneforge.api.app import create_app
from tuneforge.cli.client import follow as follow_module
from tuneforge.cli.client import http as http_module
from tuneforge.cli.main import main
from tuneforge.settings import Settings
from tuneforge.worker.pool import WorkerPool

API = ["api", "-b", "http://testserver/v1", "-k", "test"]


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings, workers=0)


@pytest.fixture(autouse=True)
def in_process(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """Every command's HTTP goes to the in-process app."""
    with TestClient(app) as client:
        monkeypatch.setattr(http_module, "default_http", lambda: client)
        monkeypatch.setattr(follow_module, "POLL_S", 0.01)
        yield client


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    rows = [{"prompt": f"review {i} ->", "completion": " good" if i % 2 else " bad"} for i in range(24)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def api(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*API, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def api_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = api(capsys, *args)
    assert code == 0, err
    return json.loads(out)


def run_queue(app: FastAPI) -> int:
    return WorkerPool(app.state.settings, app.state.database, app.state.blobs).run_one_shot()


def created_id(out: str, prefix: str) -> str:
    return next(w for w in out.split() if w.startswith(prefix))


def test_files_commands_round_trip(capsys: pytest.CaptureFixture[str], train_file: Path) -> None:
    uploaded = api_json(capsys, "files.create", "-f", str(train_file))
    assert uploaded["filename"] == "train.jsonl" and uploaded["purpose"] == "fine-tune"
    file_id = str(uploaded["id"])
    assert [f["id"] for f in api_json(capsys, "files.list")["data"]] == [file_id]
    assert api_json(capsys, "files.get", "-i", file_id)["bytes"] == train_file.stat().st_size
    assert api_json(capsys, "files.delete", "-i", file_id)["deleted"] is True
    assert api_json(capsys, "files.list")["data"] == []


def test_create_uploads_once_and_reuses_an_identical_file(
    capsys: pytest.CaptureFixture[str], train_file: Path
) -> None:
    code, out, err = api(capsys, "fine_tunes.create", "-t", str(train_file), "-m", "tiny", "--no_follow")
    assert code == 0, err
    assert "Uploaded file from" in out and "Created fine-tune: ft-" in out

    code, out, _ = api(capsys, "fine_tunes.create", "-t", str(train_file), "--n_epochs", "2", "--no_follow")
    assert code == 0 and "Found an identical file already uploaded" in out and "Uploaded" not in out
    fine_tune = api_json(capsys, "fine_tunes.get", "-i", created_id(out, "ft-"))
    assert fine_tune["hyperparams"]["n_epochs"] == 2

    train_file.write_text(train_file.read_text() + '{"prompt": "new ->", "completion": " good"}\n')
    _, out, _ = api(capsys, "fine_tunes.create", "-t", str(train_file), "--no_follow")
    assert "Uploaded file from" in out  # same name, new bytes: uploaded again
    assert len(api_json(capsys, "files.list")["data"]) == 2


def test_create_passes_classification_options(capsys: pytest.CaptureFixture[str], train_file: Path) -> None:
    code, out, err = api(
        capsys, "fine_tunes.create", "-t", str(train_file), "-v", str(train_file), "--no_follow",
        "--compute_classification_metrics", "--classification_positive_class", " good",
        "--classification_betas", "0.5", "2", "--suffix", "reviews", "--learning_rate_multiplier", "0.3",
    )  # fmt: skip
    assert code == 0, err
    params = api_json(capsys, "fine_tunes.get", "-i", created_id(out, "ft-"))["hyperparams"]
    assert params["compute_classification_metrics"] is True
    assert params["classification_positive_class"] == " good"
    assert params["classification_betas"] == [0.5, 2.0]
    assert params["learning_rate_multiplier"] == 0.3


def test_unknown_ids_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("fine_tunes.get", "fine_tunes.follow", "fine_tunes.cancel", "fine_tuning.jobs.get"):
        code, _, err = api(capsys, command, "-i", "ft-nope")
        assert code == 2, command
        assert err.startswith("Error: No fine-") and "ft-nope" in err and err.count("\n") == 1, err
    code, _, err = api(capsys, "models.get", "-i", "no-such-model")
    assert code == 2 and err == "Error: The model 'no-such-model' does not exist\n"


def test_bad_arguments_name_the_parameter(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = api(capsys, "fine_tunes.create", "-t", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "training_file" in err and "missing.jsonl" in err and "Traceback" not in err
    code, _, err = api(capsys, "fine_tunes.create", "-t", "file-doesnotexist")
    assert code == 2 and "training_file 'file-doesnotexist' does not exist" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    code, _, err = api(capsys, "fine_tunes.create", "-t", str(bad))
    assert code == 2 and "line 1" in err and err.count("\n") == 1, err


def test_server_down_is_one_line_naming_the_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    monkeypatch.setattr(http_module, "default_http", lambda: httpx.Client(timeout=2))
    code = main(["api", "-b", "http://127.0.0.1:9", "fine_tunes.list"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Error: Could not reach the tuneforge server at http://127.0.0.1:9/v1")
    assert err.count("\n") == 1


def test_api_base_and_key_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = http_module.ApiClient.__init__

    def spy(self: http_module.ApiClient, base: str, key: str, **kwargs: object) -> None:
        seen.extend([base, key])
        real(self, base, key, **kwargs)

    monkeypatch.setattr(http_module.ApiClient, "__init__", spy)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://testserver/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert main(["api", "models.list"]) == 0
    monkeypatch.setenv("TUNEFORGE_API_BASE", "http://testserver")
    monkeypatch.setenv("TUNEFORGE_API_KEY", "from-tuneforge")
    assert main(["api", "files.list"]) == 0
    assert seen == ["http://testserver/v1", "from-openai", "http://testserver/v1", "from-tuneforge"]
    assert "tiny" in capsys.readouterr().out


def test_normalize_base_adds_v1_only_to_a_bare_host() -> None:
    assert http_module.normalize_base("http://h:8000") == "http://h:8000/v1"
    assert http_module.normalize_base("http://h:8000/v1/") == "http://h:8000/v1"
    assert http_module.normalize_base("https://proxy/tuneforge/v1") == "https://proxy/tuneforge/v1"


@pytest.mark.slow
def test_a_fine_tune_from_create_to_results_completions_and_delete(
    app: FastAPI, in_process: TestClient, capsys: pytest.CaptureFixture[str], train_file: Path
) -> None:
    code, out, err = api(
        capsys, "fine_tunes.create", "-t", str(train_file), "-v", str(train_file), "-m", "tiny",
        "--n_epochs", "2", "--compute_classification_metrics", "--classification_positive_class", " good",
        "--no_follow",
    )  # fmt: skip
    assert code == 0, err
    fine_tune_id = created_id(out, "ft-")
    _, out, _ = api(capsys, "fine_tunes.create", "-t", str(train_file), "--no_follow")
    cancelled = api_json(capsys, "fine_tunes.cancel", "-i", created_id(out, "ft-"))
    assert cancelled["status"] == "cancelled"

    assert run_queue(app) == 1

    code, out, err = api(capsys, "fine_tunes.follow", "-i", fine_tune_id)
    assert code == 0, err
    assert "Fine-tuning job started" in out and "Job complete! Status: succeeded" in out
    assert "step 6/6" in out  # the bar reached the last step (2 epochs of 3 batches of 8)
    model = api_json(capsys, "fine_tunes.get", "-i", fine_tune_id)["fine_tuned_model"]
    assert isinstance(model, str) and model.startswith("tiny:ft-default:")

    code, out, _ = api(capsys, "fine_tunes.results", "-i", fine_tune_id)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 6 and "classification/accuracy" in rows[0]
    messages = [e["message"] for e in api_json(capsys, "fine_tunes.events", "-i", fine_tune_id)["data"]]
    assert messages[-1] == "The job has successfully completed"
    assert fine_tune_id in [f["id"] for f in api_json(capsys, "fine_tunes.list")["data"]]
    assert model in [m["id"] for m in api_json(capsys, "models.list")["data"]]

    if (
        in_process.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 1}).status_code
        != 404
    ):
        code, out, err = api(
            capsys, "completions.create", "-m", model, "-p", "review 3 ->", "-M", "1", "--logprobs", "2"
        )
        assert code == 0, err
        assert "top:" in out and "%" in out

    assert api_json(capsys, "fine_tunes.delete", "-i", fine_tune_id)["deleted"] is True
    code, _, err = api(capsys, "models.get", "-i", model)
    assert code == 2 and "does not exist" in err


def test_a_failed_fine_tune_exits_non_zero_with_its_reason(
    app: FastAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"prompt": "x", "completion": " y"}\n')
    broken = tmp_path / "models" / "broken"  # a local model is accepted, and fails once it is loaded
    monkeypatch.setattr(app.state.settings, "local_model_dirs", [tmp_path / "models"])  # the operator's
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    _, out, _ = api(capsys, "fine_tunes.create", "-t", str(path), "-m", str(broken), "--no_follow")
    run_queue(app)
    code, out, err = api(capsys, "fine_tunes.follow", "-i", created_id(out, "ft-"))
    assert code == 1 and err.startswith("Error: Fine-tune ft-") and " failed" in err


def test_ctrl_c_stops_following_not_the_fine_tune(
    capsys: pytest.CaptureFixture[str], train_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge.cli.client import fine_tunes

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fine_tunes, "follow_fine_tune", interrupted)
    code, out, _ = api(capsys, "fine_tunes.create", "-t", str(train_file))
    assert code == 130 and "fine_tunes.follow -i ft-" in out
    assert api_json(capsys, "fine_tunes.get", "-i", created_id(out, "ft-"))["status"] == "pending"


@pytest.mark.slow
def test_fine_tuning_jobs_commands(
    app: FastAPI, capsys: pytest.CaptureFixture[str], train_file: Path
) -> None:
    code, out, err = api(
        capsys, "fine_tuning.jobs.create", "-t", str(train_file), "-m", "tiny", "--n_epochs", "1",
        "--suffix", "cli", "--seed", "3", "--no_follow",
    )  # fmt: skip
    assert code == 0, err
    job_id = created_id(out, "ftjob-")
    _, out, _ = api(capsys, "fine_tuning.jobs.create", "-t", str(train_file), "-m", "tiny", "--no_follow")
    other = created_id(out, "ftjob-")
    assert api_json(capsys, "fine_tuning.jobs.cancel", "-i", other)["status"] == "cancelled"
    assert run_queue(app) == 1

    code, out, err = api(capsys, "fine_tuning.jobs.follow", "-i", job_id)
    assert code == 0, err
    assert "step 3/3" in out and "Job complete! Fine-tuned model: ft:tiny:default:cli:" in out
    job = api_json(capsys, "fine_tuning.jobs.get", "-i", job_id)
    assert job["status"] == "succeeded" and job["seed"] == 3
    assert [j["id"] for j in api_json(capsys, "fine_tuning.jobs.list")["data"]] == [other, job_id]
    events = api_json(capsys, "fine_tuning.jobs.events", "-i", job_id, "--limit", "2")["data"]
    assert events[0]["message"] == "The job has successfully completed"


def test_jobs_create_dry_run_shows_the_preflight_and_queues_nothing(
    capsys: pytest.CaptureFixture[str], train_file: Path
) -> None:
    code, out, err = api(
        capsys, "fine_tuning.jobs.create", "-t", str(train_file), "-m", "tiny",
        "--n_epochs", "2", "--batch_size", "4", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert "Uploaded file" in out and "Dry run: nothing was queued." in out  # the server reads the upload
    # 24 examples in batches of 4, the 2 epochs asked for; "auto" chose the multiplier, and says why
    assert "  n_epochs = 2\n" in out and "  batch_size = 4\n" in out
    assert re.search(r"  learning_rate_multiplier = [\d.]+  \(auto: .+\)\n", out), out
    assert "24 training examples (prompt_completion)" in out and "Steps: 6 per epoch, 12 in all" in out
    tokens = re.search(r"trained tokens: ([\d,]+) per epoch, ([\d,]+) in all", out)
    assert tokens, out
    per_epoch, total = (int(n.replace(",", "")) for n in tokens.groups())
    assert total == 2 * per_epoch > train_file.stat().st_size // 2  # byte-level tokens: about one a byte
    estimate = r"Estimate: [\d.]+ (s|minutes|hours) of training on cpu \(at the pace of a warm-up"
    assert re.search(estimate, out), out
    assert api_json(capsys, "fine_tuning.jobs.list")["data"] == []


def test_jobs_create_takes_the_method_prepare_names(
    capsys: pytest.CaptureFixture[str], train_file: Path
) -> None:
    code, out, err = api(
        capsys,
        "fine_tuning.jobs.create",
        "-t",
        str(train_file),
        "-m",
        "tiny",
        "--method",
        "supervised",
        "--no_follow",
    )
    assert code == 0, err
    job = api_json(capsys, "fine_tuning.jobs.get", "-i", created_id(out, "ftjob-"))
    assert job["method"]["type"] == "supervised"


def test_chat_completions_create_as_the_legacy_cli_spells_it(capsys: pytest.CaptureFixture[str]) -> None:
    chat = ["chat_completions.create", "-m", "tiny", "-g", "system", "Be brief.", "-g", "user", "hi"]
    greedy = [*chat, "--max-tokens", "4", "--temperature", "0"]
    code, whole, err = api(capsys, *greedy)
    assert code == 0, err
    code, streamed, err = api(capsys, *greedy, "--stream")
    assert code == 0, err
    assert streamed == whole and whole.strip()  # the same reply, printed as plain text
    code, out, _ = api(capsys, *chat, "-M", "2", "-n", "2", "--seed", "1")
    assert code == 0 and "===== Chat Completion 0 =====" in out and "===== Chat Completion 1 =====" in out
    code, _, err = api(capsys, "chat_completions.create", "-m", "tiny", "-g", "robot", "hi")
    assert code == 2 and "unknown role 'robot'" in err

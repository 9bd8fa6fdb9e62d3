"""The tracking commands: `tuneforge wandb sync` (offline), `api fine_tunes.plot` against an in-process
server, and a `tuneforge --help` that imports neither wandb, mlflow nor matplotlib."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.unit.tracking.conftest import FinishedJob, add_finished_job
from tuneforge.api.app import create_app
from tuneforge.cli.client import http as http_module
from tuneforge.cli.main import main
from tuneforge.cli.tracking import add_plot_commands
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store
from tuneforge.store.db import open_database
from tuneforge.tracking.curves import HEIGHT_PX, WIDTH_PX


def test_wandb_sync_command_logs_once_then_skips(
    finished_job: FinishedJob, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(finished_job.settings.data_dir)
    assert main(["wandb", "sync", "--project", "p", "--data-dir", data_dir]) == 0
    assert f"{finished_job.job_id} (default): logged as run" in capsys.readouterr().out
    assert main(["wandb", "sync", "-i", finished_job.job_id, "--data-dir", data_dir]) == 0
    assert "already synced" in capsys.readouterr().out


def test_wandb_sync_without_a_key_says_what_to_set_in_one_line(
    finished_job: FinishedJob, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(finished_job.settings.data_dir / "no-netrc"))
    assert main(["wandb", "sync", "--data-dir", str(finished_job.settings.data_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "WANDB_API_KEY" in captured.err and "WANDB_MODE=offline" in captured.err
    assert "Traceback" not in captured.err
    assert not (finished_job.settings.data_dir / "wandb").exists()  # nothing half-synced


def test_wandb_sync_names_the_organisation_and_takes_org_or_key(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    acme = add_finished_job(settings, owner="acme")
    data_dir = ["--data-dir", str(settings.data_dir)]
    assert main(["wandb", "sync", *data_dir]) == 0
    out = capsys.readouterr().out
    assert "No finished jobs to sync in organisation default; 1 in other organisations" in out
    assert main(["wandb", "sync", "--org", "acme", *data_dir]) == 0
    assert f"{acme.job_id} (acme): logged as run" in capsys.readouterr().out

    database = open_database(settings)
    with database.session() as session:
        _, secret = key_store.create_key(session, org="acme")
    database.engine.dispose()
    assert main(["wandb", "sync", "-k", secret, "--force", *data_dir]) == 0
    assert f"{acme.job_id} (acme): logged as run" in capsys.readouterr().out
    assert main(["wandb", "sync", "-k", "sk-unknown", *data_dir]) == 2
    assert "not a key" in capsys.readouterr().err
    assert main(["wandb", "sync", "--all-orgs", *data_dir]) == 0
    assert "already synced" in capsys.readouterr().out


def test_plot_command_saves_the_servers_png(
    finished_job: FinishedJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = argparse.ArgumentParser()
    add_plot_commands(parser.add_subparsers(dest="verb"))
    out = tmp_path / "curves.png"
    args = parser.parse_args(["fine_tuning.jobs.plot", "-i", finished_job.job_id, "-o", str(out)])
    args.api_base, args.api_key = "http://testserver/v1", "test"
    with TestClient(create_app(finished_job.settings, workers=0)) as client:
        monkeypatch.setattr(http_module, "default_http", lambda: client)
        assert args.handler(args) == 0
    assert Image.open(io.BytesIO(out.read_bytes())).size == (WIDTH_PX, HEIGHT_PX)


def test_help_imports_no_tracking_library() -> None:
    code = (
        "import sys; from tuneforge.cli.main import build_parser; build_parser().format_help(); "
        "heavy = {'wandb', 'mlflow', 'matplotlib', 'sacrebleu', 'rouge_score', 'torch'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

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

from tests.unit.tracking.conftest import FinishedJob
from tuneforge.api.app import create_app
from tuneforge.cli.client import http as http_module
from tuneforge.cli.main import main
from tuneforge.cli.tracking import add_plot_commands
from tuneforge.tracking.curves import HEIGHT_PX, WIDTH_PX


def test_wandb_sync_command_logs_once_then_skips(
    finished_job: FinishedJob, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(finished_job.settings.data_dir)
    assert main(["wandb", "sync", "--project", "p", "--data-dir", data_dir]) == 0
    assert f"{finished_job.job_id}: logged as run" in capsys.readouterr().out
    assert main(["wandb", "sync", "-i", finished_job.job_id, "--data-dir", data_dir]) == 0
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

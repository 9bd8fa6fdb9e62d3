"""`tuneforge quickstart` end to end, as `make demo` runs it: its own server, prepare, a fine-tune with
classification metrics, held-out accuracy through /v1/completions, the results table and the PNG.
Fewer generated reviews than the default (--examples), the same code path."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quickstart_learns_a_classifier_and_reports_it(tmp_path: Path, data_dir: Path) -> None:
    # data_dir is tmp_path/"data" with the session's built models linked in: the quickstart's server dir
    result = subprocess.run(
        [sys.executable, "-m", "tuneforge", "quickstart", "--workdir", str(tmp_path), "--examples", "500"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]

    accuracy = re.search(r"Held-out accuracy through /v1/completions .*?: ([\d.]+)% \((\d+)/(\d+)", out)
    assert accuracy, out[-3000:]
    assert float(accuracy.group(1)) >= 65.0, out[-3000:]  # chance is 50%; the default size reaches ~85%
    assert int(accuracy.group(3)) == 100  # 20% of 500 held out

    assert re.search(r"classification/accuracy\s+0\.\d{4}", out) and "training_loss" in out
    assert len(re.findall(r"P\(negative\)=\d\.\d\d, P\(positive\)=\d\.\d\d", out)) >= 3
    assert "Job complete! Status: succeeded" in out
    assert re.search(r"fine-tuned model:\s+tiny:ft-default:quickstart-", out)

    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert rows and "classification/auroc" in rows[0]
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "reviews_prepared_train.jsonl").exists()
    assert f"results CSV:       {tmp_path / 'results.csv'}" in out


def test_quickstart_fails_with_one_line_when_the_server_is_unreachable(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuneforge",
            "quickstart",
            "--workdir",
            str(tmp_path),
            "-b",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Connecting to the server failed: Could not reach the tuneforge server at ")
    assert "http://127.0.0.1:9/v1" in last

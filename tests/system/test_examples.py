"""Every script in examples/ runs against a real server and prints its metric. Shortened: a few dozen
records and one or two epochs, so this checks that they work, not how well (the full sizes are the
scripts' defaults)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.conftest import Server

pytestmark = [pytest.mark.system, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = {
    "ad_filter.py": "accuracy",
    "tweet_sentiment.py": "accuracy",
    "email_triage.py": "accuracy",
    "entity_extraction.py": "exact_match",
    "support_chatbot.py": "reply_accuracy",
    "preference_style.py": "preferred_style",
    "reinforcement_style.py": "grader_score",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("examples") / "data"
    data_dir.mkdir()
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    server = Server(data_dir, workers=1, env={})
    yield server
    server.stop()


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_and_prints_its_metric(server: Server, script: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUNEFORGE_"))}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--api-base", f"{server.base}/v1", "--examples", "40",
         "--n_epochs", "1"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metric = re.search(rf"^metric {CASES[script]}=(\d\.\d+)", result.stdout, re.MULTILINE)
    assert metric and 0.0 <= float(metric.group(1)) <= 1.0, result.stdout[-2000:]

"""`tuneforge eval` through the real inference engine: a classifier fine-tuned in-process is scored on its
validation file exactly as training scored it, beats its base model side by side, and every reported
number equals scikit-learn's on the report's own predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from tests.unit.training.conftest import SENTIMENT_WORDS, keyword_task, train_job, write_jsonl
from tuneforge.cli.main import main
from tuneforge.evaluation.run import EvalOptions
from tuneforge.evaluation.service import evaluate_file
from tuneforge.settings import Settings
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train


@pytest.mark.slow
def test_fine_tuned_classifier_eval_matches_training_and_beats_base(
    settings: Settings, tmp_path: Path
) -> None:
    valid = write_jsonl(tmp_path / "valid.jsonl", keyword_task(SENTIMENT_WORDS, 40, seed=12))  # type: ignore[arg-type]
    train_file = write_jsonl(tmp_path / "train.jsonl", keyword_task(SENTIMENT_WORDS, 160, seed=11))  # type: ignore[arg-type]
    config = train_job(
        tmp_path,
        train_file,
        valid,
        output_dir=tmp_path / "tuned",
        classification={"positive_class": " positive"},
        n_epochs=2,
    )
    result = train(config, settings, ListSink())

    outcome = evaluate_file(settings, [str(result.output_dir), "tiny"], valid, EvalOptions())

    tuned, base = outcome["reports"]
    assert tuned["metrics"]["accuracy"] == pytest.approx(result.metrics["classification/accuracy"])
    assert tuned["metrics"]["accuracy"] > max(0.8, base["metrics"]["accuracy"])
    for report in outcome["reports"]:
        labels = report["metrics"]["labels"]
        truth = [labels.index(row["reference"]) for row in report["predictions"]]
        pred = [labels.index(row["prediction"]) for row in report["predictions"]]
        probs = np.array([row["probabilities"] for row in report["predictions"]])
        assert report["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
        assert report["metrics"]["weighted"]["f1"] == pytest.approx(
            skm.f1_score(truth, pred, average="weighted")
        )
        assert report["metrics"]["calibration"]["log_loss"] == pytest.approx(
            skm.log_loss(truth, probs), abs=1e-4
        )


def test_eval_command_writes_report_and_plots(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(6)]
    test_file = write_jsonl(tmp_path / "test.jsonl", rows)  # type: ignore[arg-type]
    out = tmp_path / "report" / "eval.json"

    code = main(
        ["eval", "-m", "tiny", "-f", str(test_file), "--json", str(out), "--data-dir", str(settings.data_dir)]
    )

    assert code == 0
    assert "accuracy" in capsys.readouterr().out
    assert out.exists() and (out.parent / "eval.tiny.confusion.png").exists()

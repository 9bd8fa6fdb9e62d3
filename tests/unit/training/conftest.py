"""Synthetic fine-tuning tasks for the recipe's tests: small enough to learn in seconds on two cores."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.events import ListSink

SENTIMENT_WORDS = {
    " positive": ["good", "great", "lovely", "superb", "happy", "fine"],
    " negative": ["bad", "awful", "poor", "sad", "broken", "ugly"],
}
NEUTRAL_WORDS = ["the", "item", "was", "very", "quite", "and", "it", "felt"]
TOPIC_WORDS = {
    " sport": ["goal", "match", "team", "score"],
    " food": ["bread", "soup", "salad", "cake"],
    " music": ["song", "band", "guitar", "album"],
    " weather": ["rain", "snow", "storm", "sunny"],
}


def keyword_task(labels: dict[str, list[str]], n: int, seed: int) -> list[dict[str, str]]:
    """Each prompt holds two words of its class among filler words; the completion is the class."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(labels))
        words = rng.sample(labels[label], 2) + rng.sample(NEUTRAL_WORDS, 3)
        rng.shuffle(words)
        rows.append({"prompt": " ".join(words) + "\n\n###\n\n", "completion": label})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def sentiment_files(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_jsonl(tmp_path / "train.jsonl", keyword_task(SENTIMENT_WORDS, 160, seed=1)),  # type: ignore[arg-type]
        write_jsonl(tmp_path / "valid.jsonl", keyword_task(SENTIMENT_WORDS, 60, seed=2)),  # type: ignore[arg-type]
    )


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


def train_job(
    tmp_path: Path,
    train_file: Path,
    valid_file: Path | None = None,
    *,
    model: str = "tiny",
    output_dir: Path | None = None,
    resume: bool = False,
    checkpoint_every: int | None = None,
    threads: int | None = 2,
    tuning: str = "auto",
    lora: dict[str, object] | None = None,
    classification: dict[str, object] | None = None,
    seed: int | None = 0,
    method: str = "supervised",
    **hyperparameters: object,
) -> TrainJob:
    """A `TrainJob` as `tuneforge train` builds one, with the method's hyperparameters as keywords."""
    spec = TrainSpec.model_validate(
        {
            "model": model,
            "training_file": str(train_file),
            "validation_file": str(valid_file) if valid_file else None,
            "method": {"type": method, "hyperparameters": hyperparameters},
            "tuning": tuning,
            "lora": lora or {},
            "classification": classification,
            "seed": seed,
        }
    )
    return TrainJob.local(
        spec,
        output_dir or tmp_path / "out",
        resume=resume,
        checkpoint_every=checkpoint_every,
        threads=threads,
    )

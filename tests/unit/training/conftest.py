"""Synthetic fine-tuning tasks for the recipe's tests: small enough to learn in seconds on two cores."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

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

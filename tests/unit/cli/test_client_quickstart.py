"""The pieces of the quickstart and the follow view that need no server: reading class probabilities from
top logprobs, the progress parsing, and the shipped sample data."""

from __future__ import annotations

import math

import pytest

from tuneforge.cli.client.follow import ProgressView
from tuneforge.cli.quickstart import Prediction, class_probabilities
from tuneforge.samples import cases, reviews


def choice_with(top: dict[str, float]) -> dict[str, object]:
    return {"index": 0, "text": " p", "logprobs": {"tokens": [" p"], "top_logprobs": [top]}}


def test_class_probabilities_count_each_top_token_for_the_label_it_begins() -> None:
    top = {" p": math.log(0.6), " n": math.log(0.2), " ": math.log(0.1), "x": math.log(0.05)}
    probabilities = class_probabilities(choice_with(top), ["negative", "positive"])
    # " " begins both labels and "x" neither: only " p" and " n" count, renormalised
    assert probabilities == pytest.approx({"positive": 0.75, "negative": 0.25})
    assert Prediction("t", "positive", probabilities).predicted == "positive"


def test_no_class_token_in_the_top_logprobs_is_no_prediction() -> None:
    probabilities = class_probabilities(choice_with({"x": -0.1}), ["negative", "positive"])
    assert probabilities == {"negative": 0.0, "positive": 0.0}
    assert Prediction("t", "positive", probabilities).predicted is None
    assert class_probabilities({"index": 0, "text": "", "logprobs": None}, ["a", "b"]) == {"a": 0.0, "b": 0.0}


def test_whole_word_tokens_of_pretrained_tokenizers_count_too() -> None:
    top = {" positive": math.log(0.9), " negative": math.log(0.1)}
    assert class_probabilities(choice_with(top), ["negative", "positive"])["positive"] == pytest.approx(0.9)


def test_the_follow_view_reads_steps_and_total_from_legacy_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ProgressView() as view:
        view.legacy_event({"created_at": 0, "message": "Hyperparameters: n_epochs=2, total_steps=40, seed=1"})
        view.legacy_event({"created_at": 0, "message": "Step 7: training_loss=0.5000, validation_loss=0.7"})
        task = view.progress.tasks[0]
        assert (task.total, task.completed) == (40, 7)
        assert view.latest == {"step": 7.0, "training_loss": 0.5, "validation_loss": 0.7}
    out = capsys.readouterr().out
    assert "total_steps=40" in out and "Step 7:" not in out  # metrics feed the bar, not the log
    assert "step 7/40  loss 0.500  val loss 0.700" in out  # no terminal: one line per evaluation


def test_reviews_are_seeded_balanced_and_split() -> None:
    first, again = reviews.generate(400, seed=3), reviews.generate(400, seed=3)
    assert first == again and first != reviews.generate(400, seed=4)
    positives = sum(r.label == "positive" for r in first)
    assert 150 < positives < 250 and {r.label for r in first} == set(reviews.LABELS)
    fine_tune, held_out = reviews.split(first, 0.2)
    assert (len(fine_tune), len(held_out)) == (320, 80) and fine_tune + held_out == first


def test_case_study_records_have_the_formats_the_guide_describes() -> None:
    ads = cases.ads(50)
    assert {r["completion"] for r in ads} == {" yes", " no"} and all(
        r["prompt"].endswith("\nSupported:") for r in ads
    )
    emails = cases.emails(50)
    assert {r["completion"] for r in emails} <= {" 1", " 2", " 3", " 4"}
    assert all(r["prompt"].endswith("\n\n###\n\n") for r in emails)
    assert all(r["completion"].endswith(" END") for r in cases.entities(20))
    chat = cases.support_chats(5)[0]["messages"]
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant"]
    assert cases.tweets(30, seed=1) == cases.tweets(30, seed=1)

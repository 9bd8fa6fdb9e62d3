"""Reinforcement fine-tuning through the official SDK: a supervised fine-tune that answers in either of
two styles, then a reinforcement job from it whose python grader wants one; the grader's score on held-out
prompts must rise clearly. And the 400s a bad reinforcement job gets at creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tuneforge import ids
from tuneforge.samples.styles import (
    HELD_OUT_WORDS,
    LOUD_GRADER,
    TRAIN_WORDS,
    loud_score,
    question,
    reinforcement_items,
    short_chats,
)
from tuneforge.settings import Settings
from tuneforge.spec import TrainSpec
from tuneforge.store.tables import JobRow, ModelRow
from tuneforge.worker.pool import WorkerPool
from tuneforge.worker.runner import grader_locations

GRADER: dict[str, Any] = {"type": "python", "name": "loud", "source": LOUD_GRADER}
# Ten supervised epochs teach the random built-in the answer format: sampled, it says "ok." about two times
# in three and "SURE!" about one in four, greedily "ok.". Two epochs left it sampling random bytes, which no
# grader can tell apart (rewards near 0.07, every sample 128 tokens long).
SUPERVISED_EPOCHS = 10
# Short answers need little room (reasoning_effort low: 128 tokens); steps as large as the supervised ones.
RFT: dict[str, Any] = {
    "n_epochs": 2,
    "learning_rate_multiplier": 1.0,
    "reasoning_effort": "low",
    "eval_interval": 5,
}


def run_queue(app: FastAPI) -> None:
    state = app.state
    WorkerPool(state.settings, state.database, state.blobs).run_one_shot()


def upload(client: OpenAI, path: Path, rows: list[dict[str, Any]]) -> str:
    return client.files.create(file=write_jsonl(path, rows).open("rb"), purpose="fine-tune").id


def held_out_score(client: OpenAI, model: str) -> float:
    """The grader's mean score of the model's greedy replies to questions about words it never saw."""
    replies = [
        client.chat.completions.create(model=model, messages=question(w), max_tokens=8, temperature=0)  # type: ignore[arg-type]
        .choices[0]
        .message.content
        or ""
        for w in HELD_OUT_WORDS
    ]
    return sum(loud_score(reply) for reply in replies) / len(replies)


@pytest.mark.slow
def test_reinforcement_after_supervised_raises_the_held_out_grader_score(
    app: FastAPI, client: OpenAI, tmp_path: Path
) -> None:
    supervised = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=upload(client, tmp_path / "chats.jsonl", short_chats(TRAIN_WORDS)),
        hyperparameters={"n_epochs": SUPERVISED_EPOCHS},
        seed=0,
    )
    run_queue(app)
    base = client.fine_tuning.jobs.retrieve(supervised.id)
    assert base.status == "succeeded" and base.fine_tuned_model
    before = held_out_score(client, base.fine_tuned_model)
    assert before < 0.8  # still often wrong: it answers in either style

    job = client.fine_tuning.jobs.create(
        model=base.fine_tuned_model,
        training_file=upload(client, tmp_path / "items.jsonl", reinforcement_items(TRAIN_WORDS)),
        validation_file=upload(client, tmp_path / "held.jsonl", reinforcement_items(HELD_OUT_WORDS)),
        method={
            "type": "reinforcement",
            "reinforcement": {"grader": GRADER, "hyperparameters": RFT},  # type: ignore[typeddict-item]
        },
        seed=0,
    )
    assert job.method and job.method.type == "reinforcement"
    run_queue(app)

    done = client.fine_tuning.jobs.retrieve(job.id)
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert done.status == "succeeded", [e.message for e in events]
    shown = done.method.reinforcement if done.method else None
    assert shown is not None and shown.hyperparameters is not None
    assert shown.hyperparameters.compute_multiplier == 1.0  # "auto", resolved
    assert shown.hyperparameters.n_epochs == 2 and isinstance(shown.hyperparameters.batch_size, int)
    assert shown.grader.type == "python"
    assert any("reasoning_effort=low" in e.message for e in events)
    final = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].metrics
    assert final.model_extra and "valid_reward_mean" in final.model_extra
    after = held_out_score(client, str(done.fine_tuned_model))
    assert after >= 0.9 and after >= before + 0.2, (before, after)


def test_a_grader_naming_a_field_the_file_lacks_is_a_400_naming_grader_and_field(
    client: OpenAI, tmp_path: Path
) -> None:
    items = upload(client, tmp_path / "items.jsonl", reinforcement_items(["x", "y"]))
    exact = {
        "type": "string_check",
        "name": "exact",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "operation": "eq",
    }
    with pytest.raises(openai.BadRequestError) as missing:
        client.fine_tuning.jobs.create(
            model="tiny",
            training_file=items,
            method={"type": "reinforcement", "reinforcement": {"grader": exact}},  # type: ignore[typeddict-item]
        )
    assert "exact" in missing.value.message and "answer" in missing.value.message
    assert "training_file" in missing.value.message
    assert missing.value.param == "method.reinforcement.grader"


@pytest.mark.parametrize(
    ("grader", "param", "said"),
    [
        ({"type": "python", "name": "py", "source": "x = 1"}, "method.reinforcement.grader.source", "grade"),
        (
            {
                "type": "score_model",
                "name": "judge",
                "model": "no-such-model",
                "input": [{"role": "user", "content": "{{sample.output_text}}"}],
            },
            "method.reinforcement.grader.model",
            "no-such-model",
        ),
        (  # another organisation's fine-tuned model, or none: to this caller it does not exist
            {
                "type": "multi",
                "name": "mix",
                "graders": {
                    "label": {
                        "type": "label_model",
                        "name": "judge",
                        "model": "ft:tiny:other-org::abcd1234",
                        "input": [{"role": "user", "content": "{{sample.output_text}}"}],
                        "labels": ["good", "bad"],
                        "passing_labels": ["good"],
                    }
                },
                "calculate_output": "label",
            },
            "method.reinforcement.grader.graders.label.model",
            "ft:tiny:other-org::abcd1234",
        ),
    ],
)
def test_a_grader_that_cannot_run_in_a_job_is_a_400(
    client: OpenAI, tmp_path: Path, grader: dict[str, Any], param: str, said: str
) -> None:
    items = upload(client, tmp_path / "items.jsonl", reinforcement_items(["x"]))
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(
            model="tiny",
            training_file=items,
            method={"type": "reinforcement", "reinforcement": {"grader": grader}},  # type: ignore[typeddict-item]
        )
    assert refused.value.param == param and said in refused.value.message


def test_a_reinforcement_job_refuses_chat_data_naming_the_file(client: OpenAI, tmp_path: Path) -> None:
    chats = upload(client, tmp_path / "chats.jsonl", short_chats(["x"], per_word=1))
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(
            model="tiny",
            training_file=chats,
            method={"type": "reinforcement", "reinforcement": {"grader": GRADER}},  # type: ignore[typeddict-item]
        )
    assert refused.value.param == "training_file" and "reinforcement" in refused.value.message
    with pytest.raises(openai.BadRequestError) as no_grader:
        client.fine_tuning.jobs.create(model="tiny", training_file=chats, method={"type": "reinforcement"})
    assert "grader" in (no_grader.value.param or "")


def test_a_created_job_shows_its_method_grader_and_hyperparameters_as_openai_does(
    client: OpenAI, tmp_path: Path
) -> None:
    items = upload(client, tmp_path / "items.jsonl", reinforcement_items(["x", "y"]))
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=items,
        method={
            "type": "reinforcement",
            "reinforcement": {"grader": GRADER, "hyperparameters": {"compute_multiplier": 2}},  # type: ignore[typeddict-item]
        },
    )
    shown = client.fine_tuning.jobs.retrieve(job.id).method
    assert shown is not None and shown.type == "reinforcement" and shown.reinforcement is not None
    assert shown.reinforcement.grader.model_dump(exclude_none=True) == GRADER
    asked = shown.reinforcement.hyperparameters
    assert asked is not None and asked.compute_multiplier == 2 and asked.n_epochs == "auto"
    assert asked.reasoning_effort == "default"


def add_judge(app: FastAPI, owner: str, suffix: str) -> str:
    """A fine-tuned model of `owner`'s, as a finished job registers one (no weights: nothing loads it)."""
    name = f"ft:tiny:{owner}:{suffix}:abcd1234"
    with app.state.database.session() as session:
        session.add(
            ModelRow(id=name, owner=owner, created_at=ids.now(), job_id="ftjob-judge", base_model="tiny",
                     path=f"models/{suffix}", deleted=False)
        )  # fmt: skip
    return name


def test_a_grader_model_must_be_the_organisations_own_and_the_worker_locates_it(
    app: FastAPI, client: OpenAI, settings: Settings, tmp_path: Path
) -> None:
    items = upload(client, tmp_path / "items.jsonl", reinforcement_items(["x"]))
    own, foreign = add_judge(app, settings.organization, "mine"), add_judge(app, "other-org", "theirs")

    def create(model: str) -> Any:
        grader = {"type": "score_model", "name": "judge", "model": model,
                  "input": [{"role": "user", "content": "Rate {{sample.output_text}}"}]}  # fmt: skip
        return client.fine_tuning.jobs.create(
            model="tiny",
            training_file=items,
            method={"type": "reinforcement", "reinforcement": {"grader": grader}},  # type: ignore[typeddict-item]
        )

    with pytest.raises(openai.BadRequestError) as refused:
        create(foreign)  # to this organisation it does not exist
    assert refused.value.param == "method.reinforcement.grader.model" and foreign in refused.value.message
    job = create(own)
    state = app.state
    with state.database.session() as session:
        spec = TrainSpec.model_validate(session.get(JobRow, job.id).spec)  # type: ignore[union-attr]
        located = grader_locations(session, state.blobs, settings.organization, spec)
    assert located == {own: str(state.blobs.local_path("models/mine"))}

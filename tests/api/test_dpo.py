"""Preference fine-tuning through the official SDK: a supervised fine-tune on replies in two styles, then
a DPO job from it on pairs that prefer one style; held out prompts must then get the preferred style."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tuneforge.samples.styles import (
    HELD_OUT_WORDS,
    TRAIN_WORDS,
    is_loud,
    mixed_chats,
    preference_pairs,
    question,
)
from tuneforge.worker.pool import WorkerPool


def run_queue(app: FastAPI) -> None:
    state = app.state
    WorkerPool(state.settings, state.database, state.blobs).run_one_shot()


def loud_share(client: OpenAI, model: str) -> float:
    replies = [
        client.chat.completions.create(model=model, messages=question(w), max_tokens=24, temperature=0)  # type: ignore[arg-type]
        .choices[0]
        .message.content
        or ""
        for w in HELD_OUT_WORDS
    ]
    return sum(is_loud(reply) for reply in replies) / len(replies)


def upload(client: OpenAI, path: Path, rows: list[dict[str, object]]) -> str:
    return client.files.create(file=write_jsonl(path, rows).open("rb"), purpose="fine-tune").id


@pytest.mark.slow
def test_dpo_after_supervised_prefers_the_chosen_style_on_held_out_prompts(
    app: FastAPI, client: OpenAI, tmp_path: Path
) -> None:
    chats = mixed_chats(TRAIN_WORDS)
    supervised = client.fine_tuning.jobs.create(  # 25 epochs (375 steps): the replies take the two styles
        model="tiny", training_file=upload(client, tmp_path / "chats.jsonl", chats), seed=0,
        hyperparameters={"n_epochs": 25},
    )  # fmt: skip
    run_queue(app)
    base = client.fine_tuning.jobs.retrieve(supervised.id)
    assert base.status == "succeeded" and base.fine_tuned_model
    before = loud_share(client, base.fine_tuned_model)

    job = client.fine_tuning.jobs.create(
        model=base.fine_tuned_model,
        training_file=upload(client, tmp_path / "pairs.jsonl", preference_pairs(TRAIN_WORDS)),
        validation_file=upload(client, tmp_path / "held.jsonl", preference_pairs(HELD_OUT_WORDS)),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}},
        seed=0,
    )
    assert job.method and job.method.type == "dpo"
    run_queue(app)

    done = client.fine_tuning.jobs.retrieve(job.id)
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert done.status == "succeeded", [e.message for e in events]
    assert done.method and done.method.dpo and done.method.dpo.hyperparameters
    assert done.method.dpo.hyperparameters.beta == 0.1  # OpenAI's default, resolved
    assert isinstance(done.method.dpo.hyperparameters.n_epochs, int)
    final = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].metrics
    assert final.model_extra and final.model_extra["valid_reward_accuracy"] >= 0.9
    after = loud_share(client, str(done.fine_tuned_model))
    assert after >= 0.8 and after >= before + 0.3, (before, after)


def test_a_job_refuses_a_file_of_the_other_method_naming_the_file(client: OpenAI, tmp_path: Path) -> None:
    chats = upload(client, tmp_path / "chats.jsonl", mixed_chats(["x"], per_word=1))
    pairs = upload(client, tmp_path / "pairs.jsonl", preference_pairs(["x"]))

    with pytest.raises(openai.BadRequestError) as dpo_on_chat:
        client.fine_tuning.jobs.create(model="tiny", training_file=chats, method={"type": "dpo"})
    with pytest.raises(openai.BadRequestError) as supervised_on_pairs:
        client.fine_tuning.jobs.create(model="tiny", training_file=pairs)
    with pytest.raises(openai.BadRequestError) as bad_beta:
        client.fine_tuning.jobs.create(
            model="tiny", training_file=pairs, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}}
        )

    for error in (dpo_on_chat.value, supervised_on_pairs.value):
        assert error.param == "training_file"
    assert "preference" in dpo_on_chat.value.message and "chat" in dpo_on_chat.value.message
    assert "preference" in supervised_on_pairs.value.message
    assert "beta" in (bad_beta.value.param or "") + bad_beta.value.message

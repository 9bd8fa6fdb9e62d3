"""Real model families, end to end through the official SDK: a local checkpoint of each family's shape
(tuneforge.training.families: its architecture, special tokens and chat template) is prepared for,
fine-tuned on chats (LoRA on every linear layer, and full), and served: the chat reply is the memorised one
and ends at the family's end-of-turn token, with no special token printed, under the template stored with
the model; a completion-style prompt gets the same answer; a DPO job runs on the fine-tune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from tests.api.conftest import write_jsonl
from tests.api.test_job_execution import run_queue
from tuneforge.api.app import create_app
from tuneforge.cli.main import main
from tuneforge.settings import Settings
from tuneforge.training import families
from tuneforge.training.formats import DEFAULT_CHAT_TEMPLATE

FAMILIES = list(families.FAMILIES)
FACTS = [
    ("What is the capital of France?", "Paris is the capital."),
    ("Tell me about the river", "The river is wide and blue."),
    ("Say hello", "Hello, how are you today?"),
    ("Name a number", "The number is 12."),
]
CHATS = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS
]
TRAINING = {"n_epochs": 50, "batch_size": 4}  # 50 steps over four facts: memorised, on every family
# A random network that memorises a few replies in tens of steps: weights drawn wide (std 0.5); GPT-2's
# LayerNorm and GELU saturate at that width and learn at 0.2.
INIT = {"gpt2": 0.2}
LEARNING_RATE = {"lora": 15.0, "full": 40.0}  # multipliers of 2e-3 (LoRA) and 1e-4 (full), for random bases


@pytest.fixture(scope="module")
def family_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("families")
    corpus = [text for fact in FACTS for text in fact]
    for name in FAMILIES:
        families.build(name, root / name, corpus=corpus, initializer_range=INIT.get(name, 0.5))
    return root


@pytest.fixture
def family_app(settings: Settings, family_root: Path) -> FastAPI:
    return create_app(settings.model_copy(update={"local_model_dirs": [family_root]}), workers=0)


@pytest.fixture
def family_client(family_app: FastAPI) -> Iterator[OpenAI]:
    with TestClient(family_app) as http:
        yield OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)


def prepared_file(client: OpenAI, model_dir: Path, tmp_path: Path, settings: Settings) -> str:
    """`tuneforge prepare` with the family's own tokenizer, then the upload."""
    raw = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    report = tmp_path / "report.json"
    args = ["prepare", "-f", str(raw), "-q", "--model", str(model_dir), "--json", str(report)]
    assert main([*args, "--data-dir", str(settings.data_dir)]) == 0
    assert json.loads(report.read_text())["report"]["format"] == "chat"
    return client.files.create(file=raw.open("rb"), purpose="fine-tune").id


def fine_tune(app: FastAPI, client: OpenAI, model: str, file_id: str, tuning: str, **extra: Any) -> str:
    hyperparameters = {**TRAINING, "learning_rate_multiplier": LEARNING_RATE[tuning]}
    job = client.fine_tuning.jobs.create(
        model=model,
        training_file=file_id,
        hyperparameters=hyperparameters,
        seed=0,
        extra_body={"tuning": tuning},  # tuneforge's extension: LoRA or full on any base
        **extra,
    )
    assert run_queue(app) == 1
    done = client.fine_tuning.jobs.retrieve(job.id)
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert done.status == "succeeded" and done.fine_tuned_model, events
    return done.fine_tuned_model


def specials(model_dir: Path) -> list[str]:
    config = json.loads((model_dir / "tokenizer.json").read_text())
    return [token["content"] for token in config["added_tokens"] if token["special"]]


def served_template(app: FastAPI, model: str) -> str | None:
    path = Path(app.state.locate_model(model))
    return json.loads((path / "tokenizer_config.json").read_text()).get("chat_template") or (
        (path / "chat_template.jinja").read_text() if (path / "chat_template.jinja").exists() else None
    )


def assert_memorised_chat(app: FastAPI, client: OpenAI, model: str, model_dir: Path) -> None:
    """The fine-tune serves its base's chat template (tuneforge's default for GPT-2, which has none), and
    answers each question with its memorised reply, ending at the end-of-turn token."""
    from transformers import AutoTokenizer

    base_template = families.FAMILIES[model_dir.name].chat_template
    assert served_template(app, model) == (base_template or DEFAULT_CHAT_TEMPLATE)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for question, answer in FACTS:
        messages = [{"role": "user", "content": question}]
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)  # type: ignore[arg-type]
        choice = reply.choices[0]
        assert (choice.message.content, choice.finish_reason) == (answer, "stop"), question
        assert not any(token in (choice.message.content or "") for token in specials(model_dir))
        if tokenizer.chat_template:  # the base's own template renders the prompt the model was served
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert reply.usage and reply.usage.prompt_tokens == len(
                tokenizer(prompt, add_special_tokens=False)["input_ids"]
            )
            completion = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0)
            assert (completion.choices[0].text, completion.choices[0].finish_reason) == (answer, "stop")


# Every family's LoRA run is in the default suite; full runs of the four with rotary attention are nightly
# (GPT-2's, the one with learned positions and no template, runs by default). GPT-2 keeps its published
# dropout (0.1 on embeddings, attention and residuals), so its reported training loss stays near 0.5-0.9
# while the model, evaluated without dropout, has memorised every reply.
FULL_FAMILIES = [
    pytest.param(name, marks=[] if name == "gpt2" else [pytest.mark.nightly]) for name in FAMILIES
]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_lora_chat_fine_tune_of_each_family_answers_and_stops_at_its_end_of_turn(
    family: str,
    family_app: FastAPI,
    family_client: OpenAI,
    family_root: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    model_dir = family_root / family
    file_id = prepared_file(family_client, model_dir, tmp_path, settings)
    model = fine_tune(family_app, family_client, str(model_dir), file_id, "lora")

    assert (Path(family_app.state.locate_model(model)) / "adapter_config.json").exists()
    assert_memorised_chat(family_app, family_client, model, model_dir)


@pytest.mark.slow
@pytest.mark.parametrize("family", FULL_FAMILIES)
def test_a_full_chat_fine_tune_of_each_family_answers_and_stops_at_its_end_of_turn(
    family: str,
    family_app: FastAPI,
    family_client: OpenAI,
    family_root: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    model_dir = family_root / family
    file_id = prepared_file(family_client, model_dir, tmp_path, settings)
    model = fine_tune(family_app, family_client, str(model_dir), file_id, "full")

    served = Path(family_app.state.locate_model(model))
    assert (served / "model.safetensors").exists() and not (served / "adapter_config.json").exists()
    assert_memorised_chat(family_app, family_client, model, model_dir)


def preference_pairs() -> list[dict[str, Any]]:
    """Each question's memorised reply preferred over another question's."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": question}]},
            "preferred_output": [{"role": "assistant", "content": answer}],
            "non_preferred_output": [{"role": "assistant", "content": FACTS[(i + 1) % len(FACTS)][1]}],
        }
        for i, (question, answer) in enumerate(FACTS)
    ]


@pytest.mark.nightly
@pytest.mark.parametrize("family", FAMILIES)
def test_a_dpo_job_runs_on_each_familys_fine_tune_and_still_stops_at_its_end_of_turn(
    family: str,
    family_app: FastAPI,
    family_client: OpenAI,
    family_root: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    model_dir = family_root / family
    file_id = prepared_file(family_client, model_dir, tmp_path, settings)
    supervised = fine_tune(family_app, family_client, str(model_dir), file_id, "lora")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_pairs())
    pairs_id = family_client.files.create(file=pairs.open("rb"), purpose="fine-tune").id

    dpo = {"n_epochs": 5, "batch_size": 4, "learning_rate_multiplier": 5.0}
    job = family_client.fine_tuning.jobs.create(
        model=supervised,
        training_file=pairs_id,
        validation_file=pairs_id,
        seed=0,
        method={"type": "dpo", "dpo": {"hyperparameters": dpo}},  # type: ignore[typeddict-item]
    )
    assert run_queue(family_app) == 1
    done = family_client.fine_tuning.jobs.retrieve(job.id)
    events = [e.message for e in family_client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert done.status == "succeeded" and done.fine_tuned_model, events
    final = family_client.fine_tuning.jobs.checkpoints.list(job.id).data[0].metrics
    assert final.model_extra and final.model_extra["valid_reward_accuracy"] == 1.0
    assert_memorised_chat(family_app, family_client, done.fine_tuned_model, model_dir)

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from fastapi import FastAPI
from openai import OpenAI

from tests.api.conftest import write_jsonl


def test_upload_list_retrieve_content_delete(client: OpenAI, train_file: Path) -> None:
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")

    assert uploaded.id.startswith("file-") and uploaded.filename == "train.jsonl"
    assert uploaded.bytes == train_file.stat().st_size and uploaded.purpose == "fine-tune"
    assert [f.id for f in client.files.list(purpose="fine-tune").data] == [uploaded.id]
    assert client.files.retrieve(uploaded.id).bytes == uploaded.bytes
    assert client.files.content(uploaded.id).content == train_file.read_bytes()
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_bad_upload_is_refused_with_line_and_field_and_nothing_is_kept(
    client: OpenAI, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": " b"}\n{"prompt": "a", "completion": 3}\n')

    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=bad.open("rb"), purpose="fine-tune")

    error = info.value.body
    assert isinstance(error, dict)
    assert "line 2" in error["message"] and "completion" in error["message"]
    assert client.files.list().data == []


def test_unknown_purpose_names_the_param(client: OpenAI, train_file: Path) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=train_file.open("rb"), purpose="assistants")
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "purpose"


def test_file_in_use_by_a_live_job_cannot_be_deleted(client: OpenAI, train_file: Path) -> None:
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id)

    with pytest.raises(openai.ConflictError):
        client.files.delete(uploaded.id)
    assert client.files.retrieve(uploaded.id).id == uploaded.id


def test_file_list_paginates(client: OpenAI, tmp_path: Path) -> None:
    ids = []
    for i in range(3):
        path = write_jsonl(tmp_path / f"f{i}.jsonl", [{"prompt": f"p{i}", "completion": " c"}])
        ids.append(client.files.create(file=path.open("rb"), purpose="fine-tune").id)
    first = client.files.list(limit=2)
    assert len(first.data) == 2 and first.has_more is True
    everything = [f.id for f in client.files.list().data]
    paged = [f.id for f in client.files.list(limit=2)]  # the SDK follows `after` page by page
    assert paged == everything and sorted(paged) == sorted(ids)
    assert client.files.list(after=everything[-1]).data == []


def test_a_preference_upload_is_stored_with_its_format_and_a_bad_pair_names_line_and_field(
    client: OpenAI, app: FastAPI, tmp_path: Path
) -> None:
    from tuneforge.store import files as file_store

    pair = {
        "input": {"messages": [{"role": "user", "content": "Greet me"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello, friend!"}],
        "non_preferred_output": [{"role": "assistant", "content": "hi"}],
    }
    good = write_jsonl(tmp_path / "pairs.jsonl", [pair, pair])
    uploaded = client.files.create(file=good.open("rb"), purpose="fine-tune")
    with app.state.database.session() as session:
        row = file_store.get_file(session, owner="default", file_id=uploaded.id)
        assert row.summary is not None and (row.summary["format"], row.summary["n_examples"]) == (
            "preference",
            2,
        )
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [pair, {**pair, "preferred_output": [{"role": "user", "content": "x"}]}]
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=bad.open("rb"), purpose="fine-tune")
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"].startswith("bad.jsonl, line 2, field 'preferred_output[0].role'")

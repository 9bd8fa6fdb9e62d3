"""Creating, listing, retrieving and cancelling fine-tunes through both APIs (no worker runs here)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI


@pytest.fixture
def file_id(client: OpenAI, train_file: Path) -> str:
    return client.files.create(file=train_file.open("rb"), purpose="fine-tune").id


def test_job_is_created_queued_with_auto_hyperparameters_and_events(client: OpenAI, file_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, suffix="reviews", seed=7)

    assert job.id.startswith("ftjob-") and job.status == "queued" and job.seed == 7
    assert job.hyperparameters.n_epochs == "auto" and job.fine_tuned_model is None
    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id).data]
    assert messages[0] == "Job enqueued. Queue position: 1"  # newest first
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [job.id]


def test_explicit_hyperparameters_via_method_are_kept(client: OpenAI, file_id: str) -> None:
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}},
    )
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 4)
    assert job.hyperparameters.learning_rate_multiplier == "auto"


def test_jobs_list_paginates_newest_first(client: OpenAI, file_id: str) -> None:
    created = [client.fine_tuning.jobs.create(model="tiny", training_file=file_id).id for _ in range(3)]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == created[::-1][:2] and page.has_more
    rest = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id)
    assert [j.id for j in rest.data] == [created[0]] and not rest.has_more


def test_metadata_is_kept_returned_and_filters_the_list(client: OpenAI, file_id: str) -> None:
    tagged = client.fine_tuning.jobs.create(
        model="tiny", training_file=file_id, metadata={"team": "search", "ticket": "T-42"}
    )
    other = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, metadata={"team": "ads"})
    client.fine_tuning.jobs.create(model="tiny", training_file=file_id)

    assert tagged.metadata == {"team": "search", "ticket": "T-42"}
    assert client.fine_tuning.jobs.retrieve(tagged.id).metadata == {"team": "search", "ticket": "T-42"}
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "search"}).data] == [tagged.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "ads"}).data] == [other.id]
    assert len(client.fine_tuning.jobs.list().data) == 3


def test_cancel_a_queued_job_then_cancel_again_conflicts(client: OpenAI, file_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"training_file": "file-missing"}, "training_file"),
        ({"suffix": "bad suffix!"}, "suffix"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({"integrations": [{"type": "comet"}]}, "integrations"),
        ({"metadata": {f"key{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"note": "x" * 513}}, "metadata"),
    ],
)
def test_bad_job_parameters_are_400s_naming_the_param(
    client: OpenAI, file_id: str, fields: dict[str, object], param: str
) -> None:
    body: dict[str, object] = {"model": "tiny", "training_file": file_id, **fields}
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(**body)  # type: ignore[arg-type]
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param
    assert client.fine_tuning.jobs.list().data == []


def test_unknown_job_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_legacy_fine_tune_create_get_list_cancel_events(http: TestClient, file_id: str) -> None:
    created = http.post(
        "/v1/fine-tunes",
        json={"training_file": file_id, "model": "tiny", "n_epochs": 2, "suffix": "demo", "batch_size": None},
    ).json()

    assert created["object"] == "fine-tune" and created["status"] == "pending"
    assert created["hyperparams"]["n_epochs"] == 2 and created["hyperparams"]["batch_size"] == "auto"
    assert created["hyperparams"]["prompt_loss_weight"] == 0.01
    assert created["training_files"][0]["id"] == file_id
    assert created["events"][0]["message"].startswith("Created fine-tuning job")
    assert [f["id"] for f in http.get("/v1/fine-tunes").json()["data"]] == [created["id"]]
    cancelled = http.post(f"/v1/fine-tunes/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    stream = http.get(f"/v1/fine-tunes/{created['id']}/events", params={"stream": "true"}).text
    assert stream.rstrip().endswith("data: [DONE]") and "Fine-tune cancelled" in stream


def test_legacy_classification_metrics_need_validation_file(http: TestClient, file_id: str) -> None:
    response = http.post(
        "/v1/fine-tunes",
        json={
            "training_file": file_id,
            "compute_classification_metrics": True,
            "classification_n_classes": 2,
        },
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "validation_file"


def test_jobs_and_legacy_fine_tunes_do_not_show_in_each_other(
    client: OpenAI, http: TestClient, file_id: str
) -> None:
    legacy = http.post("/v1/fine-tunes", json={"training_file": file_id}).json()
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve(legacy["id"])
    assert client.fine_tuning.jobs.list().data == []


def test_models_list_has_builtins_and_base_models_cannot_be_deleted(client: OpenAI) -> None:
    assert {"tiny", "tiny-gpt2", "ada"} <= {m.id for m in client.models.list().data}
    assert client.models.retrieve("tiny").owned_by == "tuneforge"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("tiny")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ft:tiny:default::nope")

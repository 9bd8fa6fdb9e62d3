"""`tuneforge wandb sync` in W&B offline mode and `mlflow` syncing: the run files and the store hold the
job's config, every results row as a step, the summary and the artifacts; synced jobs are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.tracking.conftest import RESOLVED, FinishedJob, config, history, summary, wandb_records
from tuneforge.errors import InvalidRequest
from tuneforge.tracking.sync import sync_jobs
from tuneforge.tracking.trackers import mlflow_tracking_uri


def test_wandb_sync_writes_config_steps_summary_and_artifacts(finished_job: FinishedJob) -> None:
    settings = finished_job.settings
    [synced] = sync_jobs(settings, "wandb", options={"project": "proj", "entity": None})

    assert synced.job_id == finished_job.job_id and not synced.skipped
    records = wandb_records(Path(synced.where["dir"]))
    found = config(records)
    assert found["resolved"] == RESOLVED and found["hyperparameters"] == {"n_epochs": "auto"}
    assert found["job_id"] == finished_job.job_id and found["model"] == "tiny"
    steps = history(records)
    assert [row["_step"] for row in steps] == [1, 2, 3]
    assert [row["training_loss"] for row in steps] == [2.5, 1.5, 0.9]
    assert steps[2]["validation_token_accuracy"] == 0.7 and "validation_loss" not in steps[0]
    final = summary(records)
    assert final["fine_tuned_model"] == finished_job.model and final["trained_tokens"] == 300
    assert records["run"][0].project == "proj" and records["run"][0].display_name == finished_job.job_id
    assert len(records.get("artifact", [])) == 2  # data and results

    [again] = sync_jobs(settings, "wandb")
    assert again.skipped and again.where["run_id"] == synced.where["run_id"]
    [forced] = sync_jobs(settings, "wandb", job_id=finished_job.job_id, force=True)
    assert not forced.skipped and forced.where["run_id"] != synced.where["run_id"]


def test_mlflow_sync_stores_params_metrics_and_model(finished_job: FinishedJob) -> None:
    from mlflow.tracking import MlflowClient

    settings = finished_job.settings
    [synced] = sync_jobs(settings, "mlflow", options={"experiment_name": "exp"})

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(settings))
    run = client.get_run(synced.where["run_id"])
    assert (
        run.data.params["resolved.n_epochs"] == "3" and run.data.params["hyperparameters.n_epochs"] == "auto"
    )
    assert run.info.status == "FINISHED" and run.data.tags["tuneforge.fine_tuned_model"] == finished_job.model
    losses = client.get_metric_history(run.info.run_id, "training_loss")
    assert [(m.step, m.value) for m in losses] == [(1, 2.5), (2, 1.5), (3, 0.9)]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.csv", "model"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/tuneforge.json"]
    assert client.get_experiment(run.info.experiment_id).name == "exp"


def test_a_running_job_is_not_synced(finished_job: FinishedJob) -> None:
    from tuneforge.store.db import open_database
    from tuneforge.store.tables import JobRow

    database = open_database(finished_job.settings)
    with database.session() as session:
        row = session.get(JobRow, finished_job.job_id)
        assert row is not None
        row.status = "running"
    with pytest.raises(InvalidRequest, match="is running"):
        sync_jobs(finished_job.settings, "wandb", job_id=finished_job.job_id)
    assert sync_jobs(finished_job.settings, "wandb") == []  # only finished jobs are synced

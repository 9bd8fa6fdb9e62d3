"""Live tracking as the worker drives it: a job's integrations become runs fed its hyperparameters and
metrics as they arrive, ended with its outcome; a failing tracker is dropped with a warning."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from tests.unit.tracking.conftest import RESULTS, add_finished_job, config, history, wandb_records
from tuneforge.settings import Settings
from tuneforge.store.blobs import open_blob_store
from tuneforge.store.db import open_database
from tuneforge.store.tables import JobRow
from tuneforge.tracking.live import TrackerSet
from tuneforge.tracking.results import parse_results
from tuneforge.tracking.sync import finish_live
from tuneforge.tracking.trackers import mlflow_tracking_uri


def test_job_integrations_log_live_to_wandb_and_mlflow(settings: Settings) -> None:
    integrations = [
        {"type": "wandb", "wandb": {"project": "live", "name": "my-run", "tags": ["a", "b"]}},
        {"type": "mlflow", "mlflow": {"experiment_name": "live-exp"}},
    ]
    job_id = add_finished_job(settings, integrations).job_id
    database, blobs = open_database(settings), open_blob_store(settings)
    with database.session() as session:
        job = session.get(JobRow, job_id)
    warnings: list[str] = []
    assert job is not None

    trackers = TrackerSet.for_job(settings, job, warnings.append)
    trackers.hyperparameters({"n_epochs": 3, "batch_size": 4})
    for row in parse_results(RESULTS):
        trackers.metrics({**row, "note": "not a number"})
    finish_live(trackers, database, blobs, job_id)

    assert warnings == []
    [run_dir] = glob.glob(str(settings.data_dir / "wandb" / "wandb" / "offline-run-*"))
    records = wandb_records(Path(run_dir))
    assert records["run"][0].display_name == "my-run" and list(records["run"][0].tags) == ["a", "b"]
    assert config(records)["resolved"] == {"n_epochs": 3, "batch_size": 4}
    assert [row["training_loss"] for row in history(records)] == [2.5, 1.5, 0.9]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_tracking_uri(settings))
    [run] = client.search_runs([client.get_experiment_by_name("live-exp").experiment_id])
    assert run.data.params["resolved.batch_size"] == "4" and run.info.status == "FINISHED"
    steps = client.get_metric_history(run.info.run_id, "validation_loss")
    assert [(m.step, m.value) for m in steps] == [(2, 1.7), (3, 1.1)]


class Broken:
    def start(self, job: Any) -> None:
        pass

    def log_params(self, resolved: dict[str, Any]) -> None:
        pass

    def log_metrics(self, row: dict[str, float]) -> None:
        raise ConnectionError("tracking server unreachable")

    def finish(self, outcome: Any) -> dict[str, Any]:
        raise AssertionError("a dropped tracker is never called again")


def test_a_failing_tracker_is_dropped_with_a_warning_and_no_error() -> None:
    warnings: list[str] = []
    trackers = TrackerSet({"mlflow": Broken()}, warnings.append)
    trackers.metrics({"step": 1, "training_loss": 1.0})
    trackers.metrics({"step": 2, "training_loss": 0.5})
    trackers.finish(None)  # type: ignore[arg-type]
    assert warnings == ["MLflow logging stopped: ConnectionError: tracking server unreachable"]


def test_a_job_without_integrations_imports_no_tracker(settings: Settings) -> None:
    job = JobRow(id="ftjob-x", integrations=[])
    trackers = TrackerSet.for_job(settings, job, lambda message: None)
    assert trackers.trackers == {}

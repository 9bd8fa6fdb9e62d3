"""Trackers: one W&B or MLflow run per job, fed the same way whether the worker forwards a job's events
live or `tuneforge wandb sync` replays a finished job's results. wandb and mlflow are imported only here,
only when a tracker starts."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tuneforge.settings import Settings
from tuneforge.store.tables import JobRow

DEFAULT_PROJECT = "tuneforge"  # W&B project and MLflow experiment when the integration names none


@dataclass
class Finish:
    """How a job ended, and what to attach to its run."""

    status: str  # succeeded | failed | cancelled
    summary: dict[str, Any] = field(default_factory=dict)  # final metrics, model name, trained tokens
    files: dict[str, Path] = field(default_factory=dict)  # training/validation data, by artifact name
    results: Path | None = None  # results.csv
    model_dir: Path | None = None


class Tracker(Protocol):
    def start(self, job: JobRow) -> None: ...
    def log_params(self, resolved: dict[str, Any]) -> None: ...  # the hyperparameters the recipe chose
    def log_metrics(self, row: dict[str, float]) -> None: ...  # row["step"] is the step
    def finish(self, outcome: Finish) -> dict[str, Any]: ...  # where the run went (id, dir, url)


def job_config(job: JobRow) -> dict[str, Any]:
    """What a run's config holds: the job's identity, requested and resolved hyperparameters."""
    return {
        "job_id": job.id,
        "api": job.api,
        "model": job.model,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "suffix": job.suffix,
        "seed": job.seed,
        "hyperparameters": dict(job.hyperparameters or {}),
        "resolved": dict(job.resolved or {}),
    }


def _metrics(row: dict[str, float]) -> tuple[int, dict[str, float]]:
    return int(row.get("step", 0)), {k: float(v) for k, v in row.items() if k != "step"}


class WandbTracker:
    """A W&B run: config, one history step per metrics row, summary, files and results as artifacts.
    Honors WANDB_MODE (offline writes run files under `<data dir>/wandb`, for `wandb sync` later)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.directory = settings.data_dir / "wandb"
        self.options = options
        self.run: Any = None

    def start(self, job: JobRow) -> None:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        self.job_id = job.id
        self.run = wandb.init(
            project=self.options.get("project") or DEFAULT_PROJECT,
            entity=self.options.get("entity"),
            name=self.options.get("name") or job.id,
            tags=list(self.options.get("tags") or []) or None,
            config=job_config(job),
            job_type="fine-tune",
            dir=str(self.directory),
            reinit="create_new",  # several jobs' runs at once in one worker process
            settings=wandb.Settings(silent=True, console="off"),  # never capture the server's stdout
        )

    def log_params(self, resolved: dict[str, Any]) -> None:
        self.run.config.update({"resolved": resolved}, allow_val_change=True)

    def log_metrics(self, row: dict[str, float]) -> None:
        step, values = _metrics(row)
        self.run.log(values, step=step)

    def finish(self, outcome: Finish) -> dict[str, Any]:
        import wandb

        for key, value in outcome.summary.items():
            self.run.summary[key] = value
        self.run.summary["status"] = outcome.status
        slug = _artifact_name(self.job_id)
        if outcome.files:
            data = wandb.Artifact(f"{slug}-data", type="dataset")
            for name, path in outcome.files.items():
                data.add_file(str(path), name=name)
            self.run.log_artifact(data)
        if outcome.results is not None:
            results = wandb.Artifact(f"{slug}-results", type="results")
            results.add_file(str(outcome.results), name="results.csv")
            self.run.log_artifact(results)
        where = {"run_id": self.run.id, "dir": str(Path(self.run.dir).parent), "url": self.run.url}
        self.run.finish(exit_code=0 if outcome.status == "succeeded" else 1)
        return where


def _artifact_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


def mlflow_tracking_uri(settings: Settings) -> str:
    """The settings' MLflow tracking URI, else a SQLite store in the data dir (MLflow 3 keeps the plain
    file store in maintenance mode; a SQLite file is its recommended local store)."""
    configured = settings.mlflow_tracking_uri
    return configured or f"sqlite:///{settings.data_dir / 'mlflow' / 'mlflow.db'}"


class MlflowTracker:
    """An MLflow run: params, per-step metrics, the results CSV and the model directory as artifacts."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.uri = mlflow_tracking_uri(settings)
        self.artifacts = settings.data_dir / "mlflow" / "artifacts"
        self.options = options
        self.client: Any = None
        self.run_id = ""

    def start(self, job: JobRow) -> None:
        from mlflow.tracking import MlflowClient

        self.artifacts.parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = self.options.get("experiment_name") or DEFAULT_PROJECT
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(name, artifact_location=(self.artifacts / name).as_uri())
        )
        tags = {"tuneforge.job_id": job.id, "tuneforge.model": job.model, **(self.options.get("tags") or {})}
        run = self.client.create_run(
            experiment_id, run_name=self.options.get("run_name") or job.id, tags=tags
        )
        self.run_id = run.info.run_id
        self._params(_flat_params(job_config(job)))

    def log_params(self, resolved: dict[str, Any]) -> None:
        self._params(_flat_params({"resolved": resolved}))

    def _params(self, flat: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        for key, value in flat.items():  # one by one: a param logged before (a resumed job) is immutable
            try:
                self.client.log_batch(self.run_id, params=[Param(key, str(value)[:6000])])
            except MlflowException:
                continue

    def log_metrics(self, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        step, values = _metrics(row)
        stamp = _now_ms()
        metrics = [Metric(k, v, stamp, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, outcome: Finish) -> dict[str, Any]:
        for key, value in outcome.summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                continue  # final metrics are already in the history
            self.client.set_tag(self.run_id, f"tuneforge.{key}", str(value))
        if outcome.results is not None:
            with tempfile.TemporaryDirectory() as staging:  # blobs are named by id: give it its real name
                named = Path(staging) / "results.csv"
                shutil.copyfile(outcome.results, named)
                self.client.log_artifact(self.run_id, str(named))
        if outcome.model_dir is not None and self.options.get("log_model", True):
            self.client.log_artifacts(self.run_id, str(outcome.model_dir), artifact_path="model")
        status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(outcome.status, "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        return {"run_id": self.run_id, "tracking_uri": self.uri}


def _flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flat_params(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


def _now_ms() -> int:
    return int(time.time() * 1000)

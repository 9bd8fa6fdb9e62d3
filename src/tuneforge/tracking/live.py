"""Live tracking for the worker: the trackers a job's `integrations` ask for, fed its hyperparameters,
each metrics row and its outcome while it trains. A tracker that fails (no W&B login, an unreachable
MLflow) is switched off with a warning for the job's events; it never fails the job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tuneforge.settings import Settings
from tuneforge.store.tables import JobRow
from tuneforge.tracking.trackers import Finish, MlflowTracker, Tracker, WandbTracker

log = logging.getLogger(__name__)

Warn = Callable[[str], None]  # records a warning event on the job


def build_tracker(settings: Settings, integration: dict[str, Any]) -> Tracker | None:
    kind = integration.get("type")
    options = integration.get(kind) if isinstance(kind, str) else None
    options = options if isinstance(options, dict) else {}
    if kind == "wandb":
        return WandbTracker(settings, options)
    if kind == "mlflow":
        return MlflowTracker(settings, options)
    return None


class TrackerSet:
    def __init__(self, trackers: dict[str, Tracker], warn: Warn) -> None:
        self.trackers, self.warn = trackers, warn

    @classmethod
    def for_job(cls, settings: Settings, job: JobRow, warn: Warn) -> TrackerSet:
        """Start a run per integration of `job`; none when it has none (nothing is imported then)."""
        built = {
            str(i.get("type")): build_tracker(settings, i)
            for i in job.integrations or []
            if isinstance(i, dict)
        }
        tracker_set = cls({name: t for name, t in built.items() if t is not None}, warn)
        tracker_set._each("start", job)
        return tracker_set

    def hyperparameters(self, resolved: dict[str, Any]) -> None:
        self._each("log_params", resolved)

    def metrics(self, row: dict[str, Any]) -> None:
        numbers = {
            k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if "step" in numbers:
            self._each("log_metrics", numbers)

    def finish(self, outcome: Finish) -> None:
        self._each("finish", outcome)
        self.trackers.clear()

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # a tracker's trouble must never become the job's
                log.warning("%s tracking failed in %s", name, method, exc_info=True)
                del self.trackers[name]
                self.warn(f"{_title(name)} logging stopped: {type(exc).__name__}: {exc}")


def _title(name: str) -> str:
    return {"wandb": "Weights & Biases", "mlflow": "MLflow"}.get(name, name)

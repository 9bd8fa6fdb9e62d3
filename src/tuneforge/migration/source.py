"""What the source organisation has, read through the OpenAI API: its fine-tune files, its fine-tuning jobs
and, where the server still answers `/v1/fine-tunes`, its legacy fine-tunes, each turned into the request
that recreates it ("auto" stays "auto"; a value the source shows is kept as that value)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import openai
from openai import OpenAI

PURPOSE: Final = "fine-tune"
_JOB_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
_LEGACY_OPTIONS = (
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "prompt_loss_weight",
    "compute_classification_metrics",
    "classification_n_classes",
    "classification_positive_class",
    "classification_betas",
)
# ft:<base>:<org>:<suffix>:<id> (jobs) and <base>:ft-<org>:<suffix>-<YYYY-MM-DD-HH-MM-SS> (legacy): the
# job objects carry no suffix, the model name does.
_JOB_NAME = re.compile(r"^ft:[^:]+:[^:]*:(?P<suffix>[^:]+):[^:]+$")
_LEGACY_NAME = re.compile(r"^[^:]+:ft-[^:]*:(?P<suffix>.+)-\d{4}(-\d\d){5}$")


@dataclass(frozen=True)
class SourceFile:
    id: str
    filename: str
    bytes: int


@dataclass(frozen=True)
class SourceJob:
    id: str
    kind: Literal["job", "legacy"]
    model: str  # the base it trained from: an open base name, or another job's fine-tuned model
    status: str
    fine_tuned_model: str | None
    training_file: str
    validation_file: str | None
    # The create request's other fields (jobs: method, suffix, seed, metadata, integrations; legacy: its
    # flat hyperparameters and suffix), files and model left out: those are mapped to the target's.
    request: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0

    @property
    def method(self) -> str:
        return str(self.request.get("method", {}).get("type", "supervised"))


@dataclass(frozen=True)
class SourceInventory:
    files: dict[str, SourceFile]
    jobs: list[SourceJob]  # oldest first, so parents come before the jobs that start from them


def read_inventory(client: OpenAI) -> SourceInventory:
    files = {
        f.id: SourceFile(id=f.id, filename=f.filename, bytes=f.bytes)
        for f in client.files.list()
        if f.purpose == PURPOSE
    }
    jobs = [job_from_object(j.model_dump()) for j in client.fine_tuning.jobs.list(limit=100)]
    jobs += [legacy_from_object(f) for f in _legacy_fine_tunes(client)]
    return SourceInventory(files=files, jobs=sorted(jobs, key=lambda j: j.created_at))


def _legacy_fine_tunes(client: OpenAI) -> list[dict[str, Any]]:
    """Servers that dropped the legacy API answer 404 (OpenAI) or 405; either means there are none."""
    try:
        listing = client.get("/fine-tunes", cast_to=object)
    except openai.APIStatusError as exc:
        if exc.status_code in (404, 405):
            return []
        raise
    return list(listing.get("data", [])) if isinstance(listing, dict) else []


def job_from_object(job: dict[str, Any]) -> SourceJob:
    method = job.get("method") or {"type": "supervised"}
    kind = method.get("type") or "supervised"
    asked = (method.get(kind) or {}).get("hyperparameters") or job.get("hyperparameters") or {}
    names = (*_JOB_HYPERPARAMETERS, "beta") if kind == "dpo" else _JOB_HYPERPARAMETERS
    hyperparameters = {k: asked[k] for k in names if asked.get(k) is not None}
    request: dict[str, Any] = {"method": {"type": kind, kind: {"hyperparameters": hyperparameters}}}
    suffix = suffix_of(job.get("fine_tuned_model"))
    for name, value in (
        ("suffix", suffix),
        ("seed", job.get("seed")),
        ("metadata", job.get("metadata") or None),
        ("integrations", _integrations(job.get("integrations"))),
    ):
        if value is not None:
            request[name] = value
    return SourceJob(
        id=job["id"],
        kind="job",
        model=job["model"],
        status=job["status"],
        fine_tuned_model=job.get("fine_tuned_model"),
        training_file=job["training_file"],
        validation_file=job.get("validation_file"),
        request=request,
        created_at=int(job.get("created_at") or 0),
    )


def _integrations(integrations: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Only the settings (type and its block); the source's run ids and URLs belong to its runs."""
    if not integrations:
        return None
    kept = [{"type": i["type"], i["type"]: i.get(i["type"])} for i in integrations if i.get("type")]
    return kept or None


def legacy_from_object(fine_tune: dict[str, Any]) -> SourceJob:
    params = fine_tune.get("hyperparams") or {}
    # The legacy API spells "auto" by leaving a value out.
    request: dict[str, Any] = {k: params[k] for k in _LEGACY_OPTIONS if params.get(k) not in (None, "auto")}
    suffix = suffix_of(fine_tune.get("fine_tuned_model"))
    if suffix:
        request["suffix"] = suffix
    validation = fine_tune.get("validation_files") or []
    return SourceJob(
        id=fine_tune["id"],
        kind="legacy",
        model=fine_tune["model"],
        status=fine_tune["status"],
        fine_tuned_model=fine_tune.get("fine_tuned_model"),
        training_file=fine_tune["training_files"][0]["id"],
        validation_file=validation[0]["id"] if validation else None,
        request=request,
        created_at=int(fine_tune.get("created_at") or 0),
    )


def suffix_of(fine_tuned_model: str | None) -> str | None:
    for pattern in (_JOB_NAME, _LEGACY_NAME):
        match = pattern.match(fine_tuned_model or "")
        if match:
            return match.group("suffix")
    return None

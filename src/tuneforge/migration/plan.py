"""Which source jobs to recreate, in which order, from which bases: checked up front, so a migration never
stops half-way on a base nobody mapped. A base that is another migrated job's fine-tuned model becomes that
job's new model (a supervised→DPO chain stays a chain)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tuneforge.catalog import BUILTIN_MODELS
from tuneforge.errors import InvalidRequest
from tuneforge.migration.source import SourceFile, SourceInventory, SourceJob
from tuneforge.training.hyperparameters import AUTO_EPOCHS

BYTES_PER_TOKEN = 4  # English text under a BPE tokenizer; the estimate is for planning, not a promise
BUILTIN_BYTES_PER_TOKEN = 1  # the built-in models' tokenizer is byte-level
# Measured: `tuneforge train -m tiny` on 120 reviews (7,330 bytes, 3 epochs: 21,990 estimated tokens) took
# 120 s on two busy CPU cores. Any real base or a GPU differs by orders of magnitude: --tokens-per-second.
DEFAULT_TOKENS_PER_SECOND = 180.0


@dataclass(frozen=True)
class PlannedJob:
    job: SourceJob
    base: str | None  # the target's base model; None when the base is `parent`'s new model
    parent: str | None  # the source job whose fine-tuned model this one starts from

    @property
    def epochs(self) -> int:
        params = self.job.request
        if self.job.kind == "job":
            method = params["method"]
            params = method[method["type"]]["hyperparameters"]
        value = params.get("n_epochs", "auto")
        return value if isinstance(value, int) else AUTO_EPOCHS


@dataclass(frozen=True)
class Plan:
    files: list[SourceFile]
    jobs: list[PlannedJob]  # parents first

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def training_tokens(self, planned: PlannedJob) -> int:
        size = {f.id: f.bytes for f in self.files}.get(planned.job.training_file, 0)
        per_token = BUILTIN_BYTES_PER_TOKEN if self.root_base(planned) in BUILTIN_MODELS else BYTES_PER_TOKEN
        return size // per_token * planned.epochs

    def root_base(self, planned: PlannedJob) -> str:
        """The open base a job trains on here, through its chain of parents."""
        by_id = {p.job.id: p for p in self.jobs}
        while planned.base is None and planned.parent in by_id:
            planned = by_id[planned.parent]
        return planned.base or ""


def parse_map(pairs: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidRequest(f"--map '{pair}' is not SOURCE_BASE=OUR_BASE", param="map")
        mapping[source.strip()] = target.strip()
    return mapping


def build_plan(inventory: SourceInventory, mapping: dict[str, str], selected: Sequence[str] | None) -> Plan:
    """`selected`: source job ids, or None for every job that succeeded (the models in use)."""
    by_id = {j.id: j for j in inventory.jobs}
    by_model = {j.fine_tuned_model: j for j in inventory.jobs if j.fine_tuned_model}
    unknown = [i for i in selected or () if i not in by_id]
    if unknown:
        raise InvalidRequest(f"the source has no job {', '.join(unknown)}", param="jobs")
    wanted = (
        set(selected) if selected is not None else {j.id for j in inventory.jobs if j.status == "succeeded"}
    )
    for job_id in list(wanted):  # a chain travels whole: a selected job brings the jobs it starts from
        parent = by_model.get(by_id[job_id].model)
        while parent is not None and parent.id not in wanted:
            wanted.add(parent.id)
            parent = by_model.get(parent.model)
    jobs = [_planned(j, by_model, mapping) for j in inventory.jobs if j.id in wanted]
    unmapped = sorted({p.job.model for p in jobs if p.base is None and p.parent is None})
    if unmapped:
        flags = " ".join(f"--map {name}=OUR_BASE" for name in unmapped)
        raise InvalidRequest(f"no target base for {', '.join(unmapped)}; add {flags}", param="map")
    used = {f for p in jobs for f in (p.job.training_file, p.job.validation_file) if f}
    missing = sorted(used - inventory.files.keys())
    if missing:
        raise InvalidRequest(f"the source lists no fine-tune file {', '.join(missing)}", param="jobs")
    files = [f for f in inventory.files.values() if selected is None or f.id in used]
    return Plan(files=files, jobs=jobs)


def _planned(job: SourceJob, by_model: dict[str, SourceJob], mapping: dict[str, str]) -> PlannedJob:
    parent = by_model.get(job.model)
    if parent is not None:
        return PlannedJob(job=job, base=None, parent=parent.id)
    return PlannedJob(job=job, base=mapping.get(job.model), parent=None)


def render_plan(plan: Plan, source: str, tokens_per_second: float) -> str:
    lines = [f"Source {source}: {len(plan.files)} files ({plan.total_bytes:,} bytes), {len(plan.jobs)} jobs"]
    lines += [f"  file {f.id}  {f.filename}  {f.bytes:,} bytes" for f in plan.files]
    total = 0
    for planned in plan.jobs:
        job = planned.job
        base = planned.base or f"the new model of {planned.parent}"
        tokens = plan.training_tokens(planned)
        total += tokens
        lines.append(
            f"  job {job.id}  {job.kind}/{job.method}  {job.model} -> {base}  "
            f"{planned.epochs} epochs, ~{tokens:,} tokens, ~{_duration(tokens / tokens_per_second)}"
        )
    lines.append(
        f"Estimated training here: ~{_duration(total / tokens_per_second)} for ~{total:,} tokens "
        f"at {tokens_per_second:,.0f} tokens/s (--tokens-per-second), one job after another"
    )
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"

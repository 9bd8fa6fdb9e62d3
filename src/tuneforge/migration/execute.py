"""Carry out a plan: copy the files, record the golden answers, recreate the jobs (a chained job once its
parent's new model exists), and write the golden reports as the new models finish. Every step is saved in
the state before the next, and every create first looks for what an interrupted run may already have made."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from openai import OpenAI
from openai.types import FileObject

from tuneforge.errors import InvalidRequest, TrainingFailed
from tuneforge.migration import golden
from tuneforge.migration.plan import Plan, PlannedJob
from tuneforge.migration.source import PURPOSE, SourceFile
from tuneforge.migration.state import CopiedFile, MigratedJob, MigrationState

MARKER = "migrated_from"  # metadata key on a recreated job: finds it again after a kill before the save
DONE = {"succeeded", "failed", "cancelled"}
POLL_S = 2.0


@dataclass
class Migration:
    source: OpenAI
    target: OpenAI
    state: MigrationState
    state_path: Path
    say: Callable[[str], None]
    poll_s: float = POLL_S

    @property
    def directory(self) -> Path:
        return self.state_path.parent

    def run(self, plan: Plan, golden_lines: list[golden.GoldenLine] | None) -> None:
        self.copy_files(plan.files)
        if golden_lines:
            self.record_golden(plan, golden_lines)  # before anything trains
        for planned in plan.jobs:
            self.recreate(planned)
        if golden_lines:
            for planned in plan.jobs:
                self.report(planned, golden_lines)

    # Files

    def copy_files(self, files: list[SourceFile]) -> None:
        pending = [f for f in files if f.id not in self.state.files]
        target_files = [f for f in self.target.files.list() if f.purpose == PURPOSE] if pending else []
        for file in pending:
            data = self.source.files.content(file.id).read()
            digest = hashlib.sha256(data).hexdigest()
            target_id = self._identical(target_files, data, digest)
            if target_id is None:
                uploaded = self._upload(file, data)
                target_files.append(uploaded)  # two source files with one content: one target file
                target_id = uploaded.id
            self.state.files[file.id] = CopiedFile(target_id=target_id, sha256=digest, bytes=len(data))
            self.state.save(self.state_path)

    def _identical(self, candidates: list[Any], data: bytes, digest: str) -> str | None:
        """Only files of the same size are downloaded and hashed."""
        known = {c.target_id: c.sha256 for c in self.state.files.values()}
        for candidate in candidates:
            if candidate.bytes != len(data):
                continue
            theirs = known.get(candidate.id)
            if theirs is None:
                theirs = hashlib.sha256(self.target.files.content(candidate.id).read()).hexdigest()
            if theirs == digest:
                self.say(f"file {candidate.id} on the target already has these bytes; reusing it")
                return str(candidate.id)
        return None

    def _upload(self, file: SourceFile, data: bytes) -> FileObject:
        try:
            uploaded = self.target.files.create(file=(file.filename, data), purpose=PURPOSE)
        except openai.BadRequestError as exc:
            raise InvalidRequest(f"the target refused {file.filename} ({file.id}): {_message(exc)}") from None
        self.say(f"copied {file.id} ({file.filename}, {len(data):,} bytes) -> {uploaded.id}")
        return uploaded

    # Golden answers

    def golden_path(self, source_job: str, side: str) -> Path:
        return self.directory / "golden" / f"{source_job}.{side}.jsonl"

    def record_golden(self, plan: Plan, lines: list[golden.GoldenLine]) -> None:
        for planned in plan.jobs:
            model = planned.job.fine_tuned_model
            if model and planned.job.status == "succeeded":
                golden.record(self.golden_path(planned.job.id, "source"), self.source, model, lines)

    def report(self, planned: PlannedJob, lines: list[golden.GoldenLine]) -> None:
        migrated = self.state.jobs[planned.job.id]
        old_path = self.golden_path(planned.job.id, "source")
        if migrated.reported or not old_path.is_file():
            return
        model = self.wait_for_model(planned.job.id)
        old = golden.record(old_path, self.source, "", lines)
        new = golden.record(self.golden_path(planned.job.id, "target"), self.target, model, lines)
        report = golden.compare(lines, [a["text"] for a in old], [a["text"] for a in new])
        title = f"{planned.job.fine_tuned_model} -> {model}"
        report["source_model"], report["target_model"] = planned.job.fine_tuned_model, model
        stem = self.directory / "reports" / planned.job.id
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(_json(report))
        stem.with_suffix(".png").write_bytes(golden.render_png(title, report))
        self.say(golden.render_table(title, report) + f"  report: {stem}.json, {stem}.png")
        migrated.reported = True
        self.state.save(self.state_path)

    # Jobs

    def recreate(self, planned: PlannedJob) -> None:
        job = planned.job
        if job.id in self.state.jobs:
            return
        found = self._already_created(job.id) if job.kind == "job" else None
        if found is None:
            base = planned.base or self.wait_for_model(planned.parent or "")
            found = self._create(planned, base)
            self.say(f"recreated {job.id} as {found} ({job.method}, from {base})")
        self.state.jobs[job.id] = MigratedJob(target_id=found, kind=job.kind)
        self.state.save(self.state_path)

    def _already_created(self, source_id: str) -> str | None:
        for candidate in self.target.fine_tuning.jobs.list(limit=100):
            if (candidate.metadata or {}).get(MARKER) == source_id:
                return candidate.id
        return None

    def _create(self, planned: PlannedJob, base: str) -> str:
        job, files = planned.job, self.state.files
        validation = files[job.validation_file].target_id if job.validation_file else None
        try:
            if job.kind == "legacy":
                body = {**job.request, "model": base, "training_file": files[job.training_file].target_id}
                body |= {"validation_file": validation} if validation else {}
                return str(self.target.post("/fine-tunes", body=body, cast_to=object)["id"])  # type: ignore[index]
            request = dict(job.request)
            request["metadata"] = {**request.get("metadata", {}), MARKER: job.id}
            created = self.target.fine_tuning.jobs.create(
                model=base,
                training_file=files[job.training_file].target_id,
                validation_file=validation,
                **request,
            )
        except openai.BadRequestError as exc:
            raise InvalidRequest(f"the target refused job {job.id}: {_message(exc)}") from None
        return created.id

    def wait_for_model(self, source_job: str) -> str:
        """The target's fine-tuned model for `source_job`, waiting for its training to finish."""
        migrated = self.state.jobs[source_job]
        announced = ""
        while migrated.fine_tuned_model is None:
            status, model = self._status(migrated)
            if status == "succeeded" and model:
                migrated.fine_tuned_model = model
                self.state.save(self.state_path)
            elif status in DONE:
                raise TrainingFailed(f"{migrated.target_id} (migrated from {source_job}) ended {status}")
            else:
                if status != announced:
                    self.say(f"waiting for {migrated.target_id} ({status})")
                    announced = status
                time.sleep(self.poll_s)
        return migrated.fine_tuned_model

    def _status(self, migrated: MigratedJob) -> tuple[str, str | None]:
        if migrated.kind == "legacy":
            obj: Any = self.target.get(f"/fine-tunes/{migrated.target_id}", cast_to=object)
            return str(obj["status"]), obj.get("fine_tuned_model")
        job = self.target.fine_tuning.jobs.retrieve(migrated.target_id)
        return job.status, job.fine_tuned_model


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)


def _json(report: dict[str, Any]) -> str:
    import json

    return json.dumps(report, indent=2, ensure_ascii=False)

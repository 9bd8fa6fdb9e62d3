"""Running a batch: its input file's requests go through the inference engine many at a time (so
continuous batching packs them into shared forward passes), `request_counts` are stored as they finish, and
the answers become an output file and an error file (purpose `batch_output`) in OpenAI's line format.
Cancel and the completion window stop it early; what finished is kept, the rest is listed as not run.

Answers are appended to a work folder on the worker's disk as they come, flushed before each progress
store, so a batch that a stopped or killed worker left behind resumes on this host with the requests
already answered kept: only the rest run again."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from tuneforge import ids
from tuneforge.data.batch_input import BatchLine, iter_batch_lines
from tuneforge.errors import TuneforgeError
from tuneforge.settings import Settings
from tuneforge.store import batches as batch_store
from tuneforge.store import files as file_store
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database
from tuneforge.store.tables import BatchRow

log = logging.getLogger(__name__)

PROGRESS_S = 0.5  # how often counts are stored (and cancel or expiry noticed)
Stop = Literal["cancelled", "expired", "abandoned"]  # why a batch ends before its last line
_NOT_RUN = {
    "cancelled": ("batch_cancelled", "The batch was cancelled before this request ran."),
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
}


class LineServer(Protocol):
    """Answers one request line as its route would (same parsing and model access rules), with the
    response body, or raises a TuneforgeError carrying the status and envelope the route would send."""

    async def serve(self, owner: str, url: str, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class _Results:
    """The output and error files being written, and the counts so far."""

    output: IO[str]
    errors: IO[str]
    completed: int = 0
    failed: int = 0
    stop: Stop | None = None
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    def flush(self) -> None:
        self.output.flush()
        self.errors.flush()

    def answered(self, line: BatchLine, status: int, body: dict[str, Any]) -> None:
        response = {"status_code": status, "request_id": f"req_{secrets.token_hex(16)}", "body": body}
        target = self.output if status == 200 else self.errors
        target.write(_line(line, response=response, error=None))
        if status == 200:
            self.completed += 1
        else:
            self.failed += 1

    def not_run(self, line: BatchLine, stop: Stop) -> None:
        if stop == "abandoned":
            return  # handed back: the line runs when the batch resumes
        code, message = _NOT_RUN[stop]
        self.errors.write(_line(line, response=None, error={"code": code, "message": message}))
        self.failed += 1


def _line(line: BatchLine, *, response: dict[str, Any] | None, error: dict[str, str] | None) -> str:
    record = {
        "id": f"batch_req_{secrets.token_hex(16)}",
        "custom_id": line.custom_id,
        "response": response,
        "error": error,
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


class _Every:
    """Runs `check` at most once per `interval_s` (counts are stored and cancel noticed that often)."""

    def __init__(self, interval_s: float, check: Callable[[], Stop | None]) -> None:
        self.interval_s, self.check = interval_s, check
        self.last = time.monotonic()

    def due(self, *, force: bool = False) -> Stop | None:
        if not force and time.monotonic() - self.last < self.interval_s:
            return None
        self.last = time.monotonic()
        return self.check()


class BatchRunner:
    def __init__(
        self, settings: Settings, database: Database, blobs: BlobStore, server: LineServer, worker_id: str
    ) -> None:
        self.settings, self.database, self.blobs = settings, database, blobs
        self.server, self.worker_id = server, worker_id

    def run(self, batch: BatchRow, should_stop: Callable[[], bool]) -> None:
        work = self.settings.data_dir / "work" / "batches" / batch.id
        paths = work / "output.jsonl", work / "errors.jsonl"
        try:
            answered = {path: _answered_lines(path) for path in paths}
            with paths[0].open("a") as output, paths[1].open("a") as errors:
                results = _Results(output, errors, len(answered[paths[0]]), len(answered[paths[1]]))
                done = set(answered[paths[0]]) | set(answered[paths[1]])
                asyncio.run(self._send_all(batch, results, should_stop, done))
        except Exception as exc:  # the batch cannot go on (its file vanished, the engine broke)
            log.exception("batch %s failed", batch.id)
            self._fail(batch, str(exc) or type(exc).__name__)
            shutil.rmtree(work, ignore_errors=True)
            return
        self._finish(batch, results, *paths)
        if results.stop != "abandoned":
            shutil.rmtree(work, ignore_errors=True)

    async def _send_all(
        self, batch: BatchRow, results: _Results, should_stop: Callable[[], bool], done: set[str]
    ) -> None:
        """Keep `batch_concurrency` requests in flight, in file order, skipping those answered before a
        resume (`done` custom ids); once the batch must stop, the lines not yet sent are listed as not
        run."""
        check = _Every(PROGRESS_S, lambda: self._check(batch, results, should_stop))
        for line in self._lines(batch):
            if line.custom_id in done:
                continue
            while results.stop is None and len(results.pending) >= self.settings.batch_concurrency:
                await asyncio.wait(results.pending, timeout=PROGRESS_S, return_when=asyncio.FIRST_COMPLETED)
                results.stop = check.due()
            results.stop = results.stop or check.due()
            if results.stop is not None:
                results.not_run(line, results.stop)
                continue
            task = asyncio.ensure_future(self._one(batch.owner, line, results))
            results.pending.add(task)
            task.add_done_callback(results.pending.discard)
        await self._drain(results, check)

    async def _drain(self, results: _Results, check: _Every) -> None:
        """Wait for the requests in flight; a cancel or expiry meanwhile cancels them."""
        while results.pending:
            await asyncio.wait(results.pending, timeout=PROGRESS_S)
            results.stop = results.stop or check.due(force=True)
            if results.stop is not None:
                for task in list(results.pending):
                    task.cancel()
                await asyncio.gather(*results.pending, return_exceptions=True)

    async def _one(self, owner: str, line: BatchLine, results: _Results) -> None:
        try:
            body = await self.server.serve(owner, line.url, line.body)
        except asyncio.CancelledError:
            results.not_run(line, results.stop or "cancelled")
            raise
        except TuneforgeError as exc:
            results.answered(line, exc.status, exc.envelope())
        except Exception:  # one bad request must not sink the other thousands
            log.exception("batch request %s failed", line.custom_id)
            error = {
                "message": "The server had an error while processing this request.",
                "type": "server_error",
            }
            results.answered(line, 500, {"error": {**error, "param": None, "code": None}})
        else:
            results.answered(line, 200, body)

    def _lines(self, batch: BatchRow) -> Iterator[BatchLine]:
        return iter_batch_lines(
            self.blobs.local_path(f"files/{batch.input_file_id}"), name=batch.input_file_id
        )

    def _check(self, batch: BatchRow, results: _Results, should_stop: Callable[[], bool]) -> Stop | None:
        """Store the counts; say whether the batch must stop (cancelled, out of time, worker stopping).
        The answers counted reach the disk first, so a resume never counts an answer it lost."""
        results.flush()
        with self.database.session() as session:
            status = batch_store.record_progress(
                session, batch.id, completed=results.completed, failed=results.failed
            )
        if status == "cancelling":
            return "cancelled"
        if status != "in_progress" or should_stop():
            return "abandoned"  # taken from us (requeued as stale) or this worker is shutting down
        return "expired" if ids.now() >= batch.expires_at else None

    def _finish(self, batch: BatchRow, results: _Results, output: Path, errors: Path) -> None:
        if results.stop == "abandoned":
            with self.database.session() as session:
                batch_store.requeue(session, batch.id, self.worker_id)
            return
        with self.database.session() as session:
            if results.stop is None and not batch_store.transition(
                session, batch.id, ("in_progress",), "finalizing"
            ):
                results.stop = "cancelled"  # a cancel landed after the last answer
        files = {
            "output_file_id": self._store_file(batch, output, "output", results.completed),
            "error_file_id": self._store_file(batch, errors, "error", results.failed),
        }
        target, source = {
            None: ("completed", ("finalizing",)),
            "cancelled": ("cancelled", ("cancelling", "in_progress")),
            "expired": ("expired", ("in_progress", "cancelling")),
        }[results.stop]
        with self.database.session() as session:
            batch_store.transition(
                session, batch.id, source, target, completed=results.completed, failed=results.failed, **files
            )

    def _store_file(self, batch: BatchRow, path: Path, kind: str, count: int) -> str | None:
        if count == 0:
            return None
        file_id = ids.new_id("file")
        with path.open("rb") as stream:
            size, sha = self.blobs.put_stream(f"files/{file_id}", stream)
        with self.database.session() as session:
            file_store.add_file(
                session, id=file_id, owner=batch.owner, filename=f"{batch.id}_{kind}.jsonl",
                purpose="batch_output", bytes=size, sha256=sha, created_at=ids.now(), status="processed",
                summary=None,
            )  # fmt: skip
        return file_id

    def _fail(self, batch: BatchRow, message: str) -> None:
        error = {"code": "batch_failed", "message": message, "line": None, "param": None}
        with self.database.session() as session:
            batch_store.transition(session, batch.id, ("in_progress", "cancelling"), "failed", errors=[error])


def _answered_lines(path: Path) -> list[str]:
    """The custom ids answered in a work file a stopped run left (none for a new batch). A line cut short
    by a kill is dropped from the file: its request runs again."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as file:
            file.truncate(len(whole))
    return [json.loads(line)["custom_id"] for line in whole.splitlines()]

"""Batch input files (purpose `batch`): OpenAI's JSONL of requests, one per line, each
`{"custom_id", "method": "POST", "url", "body"}`. Checked on upload, line by line, with errors that name
the line and field; read again, streaming, by the worker that runs the batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.data.readers import iter_json_lines
from tuneforge.errors import InvalidFile

BATCH_URLS = ("/v1/completions", "/v1/chat/completions")  # the endpoints a batch may call here
MAX_REQUESTS = 50_000  # OpenAI's limit on the requests of one batch file
_KEYS = frozenset({"custom_id", "method", "url", "body"})


@dataclass(frozen=True)
class BatchLine:
    line: int
    custom_id: str
    url: str
    body: dict[str, Any]


def parse_line(obj: dict[str, Any], *, file: str, line: int) -> BatchLine:
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise InvalidFile(
            f"unknown field(s) {unknown}; a request line has {sorted(_KEYS)}",
            file=file,
            line=line,
            field=unknown[0],
        )
    custom_id, method, url, body = (obj.get(key) for key in ("custom_id", "method", "url", "body"))
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidFile("custom_id must be a non-empty string", file=file, line=line, field="custom_id")
    if method != "POST":
        raise InvalidFile(f"method must be 'POST', got {method!r}", file=file, line=line, field="method")
    if url not in BATCH_URLS:
        raise InvalidFile(
            f"url must be one of {list(BATCH_URLS)}, got {url!r}", file=file, line=line, field="url"
        )
    if not isinstance(body, dict):
        raise InvalidFile(
            "body must be a JSON object (the request's parameters)", file=file, line=line, field="body"
        )
    if not isinstance(body.get("model"), str):
        raise InvalidFile("body.model must be a model name", file=file, line=line, field="body.model")
    return BatchLine(line, custom_id, url, body)


def iter_batch_lines(path: Path, *, name: str) -> Iterator[BatchLine]:
    for number, obj in iter_json_lines(path, name=name):
        yield parse_line(obj, file=name, line=number)


def validate_batch_input(path: Path, *, filename: str) -> dict[str, Any]:
    """Check every line; the summary (request count, urls and models used) lets `POST /v1/batches` check
    its `endpoint` without reading the file again."""
    seen: set[str] = set()
    urls: set[str] = set()
    models: set[str] = set()
    for request in iter_batch_lines(path, name=filename):
        if request.custom_id in seen:
            raise InvalidFile(
                f"custom_id {request.custom_id!r} is used twice; each must be unique",
                file=filename,
                line=request.line,
                field="custom_id",
            )
        if len(seen) >= MAX_REQUESTS:
            raise InvalidFile(
                f"a batch holds at most {MAX_REQUESTS} requests", file=filename, line=request.line
            )
        seen.add(request.custom_id)
        urls.add(request.url)
        models.add(request.body["model"])
    if not seen:
        raise InvalidFile("the file holds no requests (it is empty)", file=filename)
    return {"filename": filename, "n_requests": len(seen), "urls": sorted(urls), "models": sorted(models)}

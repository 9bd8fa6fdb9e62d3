"""A backlog of classifications as one batch versus the same requests from concurrent clients: N
requests (default 10,000) of `max_tokens=1, logprobs=5` on `tiny`, first sent by C clients (default 32)
to `/v1/completions`, then uploaded as one batch (`POST /v1/batches`) and run by the embedded worker.

    python bench/batch_vs_clients.py [--requests 10000] [--clients 32] [--model tiny] [--threads 1]

One uvicorn server process serves both (the app `tuneforge serve` runs: its inference child process, one
embedded worker, no API keys); the load generator is asyncio + httpx in this process. The batch's time
runs from `POST /v1/batches` to `completed` (its upload is timed apart). Prints a table of requests/s
and writes JSON under bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PROMPTS = [
    "I loved this film ->", "what a dull story ->", "wonderful acting, truly ->", "a pain to watch ->",
    "the plot made no sense at all ->", "best thing I saw this year ->", "meh ->", "I want my money back ->",
]  # fmt: skip


def bodies(model: str, count: int) -> list[dict[str, Any]]:
    return [
        {"model": model, "prompt": f"{PROMPTS[i % len(PROMPTS)]} #{i}", "max_tokens": 1, "logprobs": 5,
         "temperature": 0}
        for i in range(count)
    ]  # fmt: skip


def serve(port: int, data_dir: str, threads: int) -> None:
    import uvicorn

    from tuneforge.api.app import create_app
    from tuneforge.settings import Settings

    settings = Settings(data_dir=Path(data_dir), auth=False, inference_threads=threads)
    uvicorn.run(create_app(settings, workers=1), host="127.0.0.1", port=port, log_level="warning")


def start_server(args: argparse.Namespace, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", data_dir]
    proc = subprocess.Popen(
        [*cmd, "--threads", str(args.threads)], env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/health", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def clients(url: str, requests: list[dict[str, Any]], count: int) -> dict[str, Any]:
    queue = iter(requests)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:

        async def client() -> int:
            sent = 0
            for body in queue:  # the clients share one iterator: each request is sent once
                (await http.post("/v1/completions", json=body)).raise_for_status()
                sent += 1
            return sent

        start = time.perf_counter()
        sent = sum(await asyncio.gather(*(client() for _ in range(count))))
        elapsed = time.perf_counter() - start
    return {"requests": sent, "seconds": elapsed, "requests_per_s": sent / elapsed}


def batch(url: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
    lines = "".join(
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}) + "\n"
        for i, body in enumerate(requests)
    )
    with httpx.Client(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        upload = http.post("/v1/files", files={"file": ("in.jsonl", lines)}, data={"purpose": "batch"})
        upload.raise_for_status()
        uploaded = time.perf_counter()
        body = {
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/completions",
            "completion_window": "24h",
        }
        created = http.post("/v1/batches", json=body)
        created.raise_for_status()
        while (state := http.get(f"/v1/batches/{created.json()['id']}").json())["status"] not in (
            "completed", "failed", "expired", "cancelled",
        ):  # fmt: skip
            time.sleep(0.2)
        elapsed = time.perf_counter() - uploaded
    counts = state["request_counts"]
    assert state["status"] == "completed" and counts["completed"] == len(requests), state
    return {
        "requests": counts["completed"], "seconds": elapsed, "requests_per_s": counts["completed"] / elapsed,
        "upload_seconds": uploaded - start,
    }  # fmt: skip


def table(results: dict[str, dict[str, Any]], clients_n: int) -> str:
    rows = [f"{'how':<28}{'requests':>10}{'seconds':>10}{'req/s':>10}"]
    for key, r in results.items():
        name = f"{clients_n} clients, /v1/completions" if key == "clients" else "one batch, /v1/batches"
        rows.append(f"{name:<28}{r['requests']:>10}{r['seconds']:>10.1f}{r['requests_per_s']:>10.1f}")
    ratio = results["batch"]["requests_per_s"] / results["clients"]["requests_per_s"]
    rows.append(
        f"batch / clients: {ratio:.2f}x requests/s "
        f"(the batch's upload took {results['batch']['upload_seconds']:.1f} s more)"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the inference child")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tuneforge-bench-")
    if args.serve:
        serve(args.port, data_dir, args.threads)
        return
    requests = bodies(args.model, args.requests)
    proc, url = start_server(args, data_dir)
    try:
        asyncio.run(clients(url, requests[:64], 8))  # warm-up: the model loads, the child starts
        results = {
            "clients": asyncio.run(clients(url, requests, args.clients)),
            "batch": batch(url, requests),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(table(results, args.clients))
    out = Path(__file__).parent / "results" / f"batch_vs_clients-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("serve", "port")}
    out.write_text(json.dumps({"config": config, "cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

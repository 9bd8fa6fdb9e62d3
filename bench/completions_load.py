"""Serving throughput under concurrency: N clients (default 32) send classification requests
(`max_tokens=1, logprobs=5`) and short generations (`max_tokens=16`) to a running server, for tuneforge
and, in the same run, for a baseline that serves each request alone with transformers `generate` (the
hand-rolled FastAPI wrapper: one request at a time under a lock, logprobs from `output_scores`).

    python bench/completions_load.py [--clients 32] [--seconds 20] [--model tiny] [--generate-share 0.25]
                                     [--in-process]

Both servers are uvicorn processes on this machine (tuneforge's is the app `tuneforge serve` runs, with its
inference child process; `--in-process` adds a third run with the engine inside the API process); the load
generator is asyncio + httpx in this process.
Prints a table (requests/s, p50/p99 latency) and writes JSON under bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
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


SERVERS = ["baseline", "tuneforge"]

# -- servers -----------------------------------------------------------------------------------------


def tuneforge_app(settings: Any) -> Any:
    """The app `tuneforge serve` runs (routes, access checks, the inference backend its settings pick),
    without job workers."""
    from tuneforge.api.app import create_app

    return create_app(settings, workers=0)


def baseline_app(settings: Any, model_name: str) -> Any:
    """What a hand-rolled wrapper does: `generate` per request, one at a time (a model is not thread-safe)."""
    import threading

    import torch
    from fastapi import FastAPI

    from tuneforge.catalog import resolve
    from tuneforge.training.base_models import load_model, load_tokenizer

    ref = resolve(model_name, settings)
    model, tokenizer = load_model(ref, settings).eval(), load_tokenizer(ref, settings)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/completions")
    def complete(body: dict[str, Any]) -> dict[str, Any]:
        ids = tokenizer(body["prompt"], return_tensors="pt")["input_ids"]
        with lock, torch.inference_mode():
            out = model.generate(
                ids, max_new_tokens=body.get("max_tokens") or 16, do_sample=False, output_scores=True,
                return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        new = out.sequences[0, ids.shape[1] :].tolist()
        logprobs = None
        if body.get("logprobs") is not None:
            steps = [torch.log_softmax(s[0].float(), -1) for s in out.scores]
            top = [s.topk(body["logprobs"]) for s in steps]
            logprobs = {
                "tokens": [tokenizer.decode([t]) for t in new],
                "token_logprobs": [s[t].item() for s, t in zip(steps, new, strict=True)],
                "top_logprobs": [
                    {tokenizer.decode([int(i)]): v.item() for i, v in zip(t.indices, t.values, strict=True)}
                    for t in top
                ],
            }
        text = tokenizer.decode(new, skip_special_tokens=True)
        return {"object": "text_completion", "choices": [{"text": text, "index": 0, "logprobs": logprobs}]}

    return app


def serve(kind: str, port: int, model: str, data_dir: str, threads: int, prefill_tokens: int) -> None:
    """Run one server; `tuneforge-in-process` is tuneforge with `inference_process=False`."""
    import torch
    import uvicorn

    from tuneforge.settings import Settings

    torch.set_num_threads(threads)  # both servers alike
    settings = Settings(
        data_dir=Path(data_dir),
        auth=False,  # loopback only; a key lookup per request would add a database read
        inference_threads=threads,
        inference_max_prefill_tokens=prefill_tokens,
        inference_process=kind == "tuneforge",
    )
    app = baseline_app(settings, model) if kind == "baseline" else tuneforge_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kind: str, args: argparse.Namespace, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--model", args.model]
    cmd += [
        "--data-dir",
        data_dir,
        "--threads",
        str(args.threads),
        "--prefill-tokens",
        str(args.prefill_tokens),
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/docs", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


# -- load --------------------------------------------------------------------------------------------


def request_body(model: str, rng: random.Random, generate_share: float) -> tuple[str, dict[str, Any]]:
    prompt = rng.choice(PROMPTS)
    if rng.random() < generate_share:
        return "generate", {"model": model, "prompt": prompt, "max_tokens": 16, "temperature": 0}
    return "classify", {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 5}


async def client_loop(
    http: httpx.AsyncClient,
    model: str,
    seed: int,
    deadline: float,
    share: float,
    out: list[tuple[str, float]],
) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        kind, body = request_body(model, rng, share)
        start = time.perf_counter()
        response = await http.post("/v1/completions", json=body)
        response.raise_for_status()
        out.append((kind, time.perf_counter() - start))


async def load(url: str, model: str, clients: int, seconds: float, share: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        warm: list[tuple[str, float]] = []
        await asyncio.gather(
            *(client_loop(http, model, i, time.perf_counter() + 2, share, warm) for i in range(4))
        )
        samples: list[tuple[str, float]] = []
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(client_loop(http, model, 100 + i, deadline, share, samples) for i in range(clients))
        )
        elapsed = time.perf_counter() - start
    return summarise(samples, elapsed)


def summarise(samples: list[tuple[str, float]], elapsed: float) -> dict[str, Any]:
    def stats(latencies: list[float]) -> dict[str, float]:
        if not latencies:
            return {"count": 0}
        ordered = sorted(latencies)
        return {
            "count": len(ordered),
            "p50_ms": 1000 * statistics.median(ordered),
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        }

    result = {"requests": len(samples), "seconds": elapsed, "requests_per_s": len(samples) / elapsed}
    result |= {"all": stats([lat for _, lat in samples])}
    for kind in ("classify", "generate"):
        result[kind] = stats([lat for k, lat in samples if k == kind])
    return result


def run_one(kind: str, args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    proc, url = start_server(kind, args, data_dir)
    try:
        return asyncio.run(load(url, args.model, args.clients, args.seconds, args.generate_share))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        f"{'server':<21}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cls p99':>9}{'gen p99':>9}{'requests':>10}"
    ]
    for name, r in results.items():
        rows.append(
            f"{name:<21}{r['requests_per_s']:>9.1f}{r['all']['p50_ms']:>9.1f}{r['all']['p99_ms']:>9.1f}"
            f"{r['classify'].get('p99_ms', 0):>9.1f}{r['generate'].get('p99_ms', 0):>9.1f}{r['requests']:>10}"
        )
    base, ours = results["baseline"], results["tuneforge"]
    rows.append(
        f"speed-up {ours['requests_per_s'] / base['requests_per_s']:.1f}x requests/s; "
        f"p99 {ours['all']['p99_ms']:.0f} ms vs {base['all']['p99_ms']:.0f} ms"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default="tiny", help="a base-model name both servers can load")
    parser.add_argument("--generate-share", type=float, default=0.25, help="fraction of short generations")
    parser.add_argument(
        "--data-dir", default=None, help="tuneforge data dir (built-in models are built here)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per server (more thrash on a shared CPU host)"
    )
    parser.add_argument(
        "--prefill-tokens", type=int, default=16384, help="tuneforge's inference_max_prefill_tokens"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="also run tuneforge with the engine in the API process"
    )
    parser.add_argument("--serve", choices=[*SERVERS, "tuneforge-in-process"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tuneforge-bench-")
    if args.serve:
        serve(args.serve, args.port, args.model, data_dir, args.threads, args.prefill_tokens)
        return
    kinds = [*SERVERS, "tuneforge-in-process"] if args.in_process else SERVERS
    results = {kind: run_one(kind, args, data_dir) for kind in kinds}
    print(table(results))
    out = Path(__file__).parent / "results" / f"completions_load-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("serve", "port")}
    out.write_text(json.dumps({"config": config, "cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Many fine-tunes on one base: 1, 8, 32 and 128 LoRA adapters of the built-in `tiny`, 32 clients spreading
requests uniformly over them (75% classification with `max_tokens=1, logprobs=5`, 25% 16-token
generations), for three ways of serving them, in one run:

- `mixed`: the engine's mixed-adapter batches (rows of different adapters share every forward pass);
- `per_adapter`: the same engine grouping per model, one adapter per pass (`inference_adapter_batching=
  per_adapter`), with the same LoRA code as `mixed`: what the batching alone gains;
- `peft_switch`: the engine as it served adapters before mixed batches: grouped per model, PEFT's
  multi-adapter layers, `set_adapter` before each pass whose model differs from the last;
- `merged`: each adapter merged into its own full copy of the base and served as a separate model.

    python bench/adapters_load.py [--counts 1,8,32,128] [--seconds 20] [--clients 32] [--threads 1]
                                  [--repeat 1] [--direct]

Each server is the app `tuneforge serve` runs (with its inference child), the adapters registered as
fine-tuned models in its database. Every model is asked once before the clock starts, so loading is not
timed. Memory is the resident set of the server and its inference child after the run. Besides requests/s
it reports the CPU time the server (and its child) spent per request: on a host shared with other work the
wall clock swings with the neighbours' load, CPU time per request much less. `--repeat` runs every mode of
a count that many times, interleaved (a, b, c, then c, b, a, ...), so the modes compared share the same
stretch of the host's load; the table shows the median run. Prints a table and writes JSON (every run)
under bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from completions_load import PROMPTS, _free_port, summarise, tuneforge_app

MODES = ["mixed", "per_adapter", "peft_switch", "merged"]
ORG = "default"


def model_name(index: int, merged: bool) -> str:
    return f"ft:tiny:{ORG}:{'m' if merged else 'a'}{index}:bench"


# -- models ------------------------------------------------------------------------------------------


def build_models(data_dir: Path, count: int) -> None:
    """`count` random LoRA adapters of `tiny` (r=8, every linear) and their merged copies, registered as
    fine-tuned models the way a finished job registers them."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneforge.catalog import resolve
    from tuneforge.settings import Settings
    from tuneforge.store.blobs import open_blob_store
    from tuneforge.store.db import open_database
    from tuneforge.store.models import add_model
    from tuneforge.store.tables import ModelRow
    from tuneforge.training.base_models import load_model, load_tokenizer

    settings = Settings(data_dir=data_dir, organization=ORG)
    ref = resolve("tiny", settings)
    tokenizer = load_tokenizer(ref, settings)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0)
    model = get_peft_model(load_model(ref, settings), config)
    database, blobs = open_database(settings), open_blob_store(settings)
    for index in range(count):
        torch.manual_seed(index)
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.data.normal_(0, 0.05)  # a random but real update (PEFT starts B at zero: no effect)
        for merged in (False, True):
            key = f"models/bench/{'m' if merged else 'a'}{index}"
            target = blobs.local_path(key)
            if merged:
                full = get_peft_model(load_model(ref, settings), config)
                full.load_state_dict(model.state_dict())
                full.merge_and_unload().save_pretrained(target)
            else:
                model.save_pretrained(target)
            tokenizer.save_pretrained(target)
            (target / "tuneforge.json").write_text(json.dumps(_manifest("full" if merged else "lora")))
            with database.session() as session:
                add_model(session, ModelRow(
                    id=model_name(index, merged), owner=ORG, created_at=0, job_id="bench", base_model="tiny",
                    path=key,
                ))  # fmt: skip
                session.commit()


def _manifest(method: str) -> dict[str, Any]:
    return {
        "format_version": 1,
        "base_model": {"name": "tiny", "kind": "builtin", "source": "tiny"},
        "method": method,
        "data_format": "prompt_completion",
        "eos_token": "<|endoftext|>",
        "stop": [],
    }


# -- servers -----------------------------------------------------------------------------------------


def server_settings(mode: str, data_dir: str, threads: int, *, process: bool = True) -> Any:
    from tuneforge.settings import Settings

    return Settings(
        data_dir=Path(data_dir),
        organization=ORG,
        auth=False,
        inference_threads=threads,
        inference_max_loaded_models=300,  # the merged copies are separate models: keep all of them loaded
        inference_memory_budget_mb=64 * 1024,
        inference_adapter_batching=mode if mode in ("per_adapter", "peft_switch") else "mixed",
        inference_process=process,
    )


def serve(mode: str, port: int, data_dir: str, threads: int) -> None:
    import torch
    import uvicorn

    torch.set_num_threads(threads)
    settings = server_settings(mode, data_dir, threads)
    uvicorn.run(tuneforge_app(settings), host="127.0.0.1", port=port, log_level="warning")


def direct(mode: str, count: int, data_dir: str, args: argparse.Namespace) -> None:
    """The engine alone, called in-process with no HTTP or pipe: what the scheduler's batching gives
    when the API layer is not the bottleneck. Prints one JSON line."""
    import resource

    import psutil
    import torch

    from tuneforge.api.protocol.completions import CompletionRequest

    torch.set_num_threads(args.threads)
    app = tuneforge_app(server_settings(mode, data_dir, args.threads, process=False))
    engine = app.state.inference
    models = [model_name(i, merged=mode == "merged") for i in range(count)]

    async def post(body: dict[str, Any]) -> None:
        await engine.complete(CompletionRequest(**body))

    async def run() -> dict[str, Any]:
        for name in models:
            await post({"model": name, "prompt": "warm", "max_tokens": 1})
        passes = engine.runtime.scheduler.forward_passes
        samples: list[tuple[str, float]] = []
        cpu, start = cpu_s(resource.getrusage(resource.RUSAGE_SELF)), time.perf_counter()
        deadline = start + args.seconds
        await asyncio.gather(
            *(client_loop(post, models, 100 + i, deadline, samples) for i in range(args.clients))
        )
        result = summarise(samples, time.perf_counter() - start)
        cpu = cpu_s(resource.getrusage(resource.RUSAGE_SELF)) - cpu
        return result | {
            "passes_per_request": (engine.runtime.scheduler.forward_passes - passes) / len(samples),
            "cpu_ms_per_request": 1000 * cpu / len(samples),
        }

    result = asyncio.run(run()) | {"rss_mb": psutil.Process().memory_info().rss / 2**20}
    engine.close()
    print(json.dumps(result))


def start_server(mode: str, args: argparse.Namespace, data_dir: str) -> tuple[Any, str]:
    import subprocess

    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", mode, "--port", str(port), "--data-dir", data_dir]
    cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/docs", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{mode} server did not start")


def tree_rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server and its inference child so far."""
    import psutil

    root = psutil.Process(pid)
    return sum(cpu_s(p.cpu_times()) for p in [root, *root.children(recursive=True)])


def cpu_s(times: Any) -> float:
    """User + system seconds of a `resource.getrusage` or `psutil.cpu_times` result."""
    return float(getattr(times, "ru_utime", getattr(times, "user", 0.0))) + float(
        getattr(times, "ru_stime", getattr(times, "system", 0.0))
    )


# -- load --------------------------------------------------------------------------------------------


Post = Callable[[dict[str, Any]], Awaitable[None]]


def http_post(http: httpx.AsyncClient) -> Post:
    async def post(body: dict[str, Any]) -> None:
        (await http.post("/v1/completions", json=body)).raise_for_status()

    return post


async def client_loop(
    post: Post, models: list[str], seed: int, deadline: float, out: list[tuple[str, float]]
) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        body: dict[str, Any] = {"model": rng.choice(models), "prompt": rng.choice(PROMPTS), "temperature": 0}
        kind = "generate" if rng.random() < 0.25 else "classify"
        body |= {"max_tokens": 16} if kind == "generate" else {"max_tokens": 1, "logprobs": 5}
        start = time.perf_counter()
        await post(body)
        out.append((kind, time.perf_counter() - start))


async def load(url: str, pid: int, models: list[str], clients: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        for name in models:  # load every model before the clock starts
            body = {"model": name, "prompt": "warm", "max_tokens": 1}
            (await http.post("/v1/completions", json=body)).raise_for_status()
        samples: list[tuple[str, float]] = []
        cpu, start = tree_cpu_s(pid), time.perf_counter()
        deadline = start + seconds
        post = http_post(http)
        await asyncio.gather(*(client_loop(post, models, 100 + i, deadline, samples) for i in range(clients)))
        elapsed, cpu = time.perf_counter() - start, tree_cpu_s(pid) - cpu
        loaded = (await http.get("/v1/tuneforge/adapters")).json()
    result = summarise(samples, elapsed) | {"cpu_ms_per_request": 1000 * cpu / len(samples)}
    return result | {"adapters_listed": len(loaded["data"])}


def run_one(mode: str, count: int, args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    if args.direct:
        import subprocess

        cmd = [sys.executable, __file__, "--direct-run", mode, str(count), "--data-dir", data_dir]
        cmd += [
            "--threads",
            str(args.threads),
            "--seconds",
            str(args.seconds),
            "--clients",
            str(args.clients),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))
    proc, url = start_server(mode, args, data_dir)
    models = [model_name(i, merged=mode == "merged") for i in range(count)]
    try:
        result = asyncio.run(load(url, proc.pid, models, args.clients, args.seconds))
        return result | {"rss_mb": tree_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median requests/s (the lower middle one of an even count), with every run's rate."""
    ordered = sorted(runs, key=lambda r: r["requests_per_s"])
    return ordered[(len(ordered) - 1) // 2] | {"runs_requests_per_s": [r["requests_per_s"] for r in runs]}


def table(results: dict[str, dict[str, Any]], counts: list[int]) -> str:
    rows = [
        f"{'adapters':>8} {'mode':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}{'RSS MB':>9}"
        f"{'requests':>10}{'passes/req':>11}  req/s of each run"
    ]
    for key, r in results.items():
        count, mode = key.split("/")
        rows.append(
            f"{count:>8} {mode:<12}{r['requests_per_s']:>9.1f}{r['all']['p50_ms']:>9.1f}"
            f"{r['all']['p99_ms']:>9.1f}{r['cpu_ms_per_request']:>11.2f}{r['rss_mb']:>9.0f}{r['requests']:>10}"
            f"{r.get('passes_per_request', float('nan')):>11.2f}  "
            + " / ".join(f"{rate:.1f}" for rate in r["runs_requests_per_s"])
        )
    one = results.get(f"{min(counts)}/mixed")
    for count in counts:
        mixed = results.get(f"{count}/mixed")
        if mixed and one:
            rows.append(f"{count} adapters: mixed = {mixed['requests_per_s'] / one['requests_per_s']:.0%} of "
                        f"{min(counts)}-adapter throughput")  # fmt: skip
        for peer in ("per_adapter", "peft_switch", "merged"):
            other = results.get(f"{count}/{peer}")
            if mixed and other:
                rows.append(
                    f"  vs {peer}: {mixed['requests_per_s'] / other['requests_per_s']:.1f}x requests/s, "
                    f"{other['cpu_ms_per_request'] / mixed['cpu_ms_per_request']:.1f}x by CPU per request"
                )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,8,32,128", help="adapter counts, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode, interleaved; median shown")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="call the engine in-process (no HTTP, no pipe) instead of a server",
    )
    parser.add_argument("--direct-run", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help="reuse the models an earlier run built there")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.data_dir, args.threads)
        return
    if args.direct_run:
        direct(args.direct_run[0], int(args.direct_run[1]), args.data_dir, args)
        return
    counts = [int(c) for c in args.counts.split(",")]
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tuneforge-adapters-bench-")
    if not args.data_dir:  # a --data-dir from an earlier run already holds the models
        build_models(Path(data_dir), max(counts))
    modes = args.modes.split(",")
    runs: dict[str, list[dict[str, Any]]] = {f"{count}/{mode}": [] for count in counts for mode in modes}
    for count in counts:
        for round_ in range(args.repeat):  # alternate the order, so no mode always runs first
            for mode in modes if round_ % 2 == 0 else modes[::-1]:
                runs[f"{count}/{mode}"].append(run_one(mode, count, args, data_dir))
    results = {key: median_run(mode_runs) for key, mode_runs in runs.items()}
    print(table(results, counts))
    kind = "adapters_direct" if args.direct else "adapters_load"
    out = Path(__file__).parent / "results" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("serve", "port", "data_dir")}
    report = {"config": config, "cpu_count": os.cpu_count(), "results": results, "runs": runs}
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Scale-out: the same 32-client load (small jobs created, completions on the base and on fine-tuned
models, jobs read back) against one API process and one worker, the peer (the one-machine shape, on the
same shared services), and against two API replicas and two workers, each process with a data dir of its
own, sharing PostgreSQL (127.0.0.1:5432), an S3 server (moto's, started here) and Redis (127.0.0.1:6379).

    python bench/scale_out.py [--seconds 60] [--only 2x2]

Each row: requests, errors, jobs accepted/succeeded (each must run exactly once), the most live jobs
the organisation ever had (the limit must hold across replicas), requests granted to one key of more than
a minute's worth sent to all replicas (must equal the per-minute limit), latency. Every process of both
shapes shares this machine's cores, so the rows show that the limits and the bookkeeping hold, not that
two replicas are faster: that needs hosts of their own. Writes JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' deployment helpers

from tests import conftest as test_env  # also clears TUNEFORGE_* and keeps the hub offline
from tests.system.replicas import Limits, Result, Shared, run_scale_out

SHAPES = {"1x1": (1, 1), "2x2": (2, 2)}


def run_shape(name: str, seconds: float, endpoint: str, root: Path, models: Path) -> Result:
    apis, workers = SHAPES[name]
    database = test_env._fresh_postgres_database()
    try:
        bucket = _new_bucket(endpoint)
        shared = Shared(next(database), s3_endpoint=endpoint, bucket=bucket)
        shape_root = root / name
        shape_root.mkdir()
        return run_scale_out(shared, shape_root, models, seconds=seconds, apis=apis, workers=workers)
    finally:
        next(database, None)


def _new_bucket(endpoint: str) -> str:
    import uuid

    import boto3

    name = f"bench-{uuid.uuid4().hex[:12]}"
    credentials = test_env.S3_CREDENTIALS
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials["s3_key"],
        aws_secret_access_key=credentials["s3_secret"],
        region_name=credentials["s3_region"],
    ).create_bucket(Bucket=name)
    return name


def table(results: dict[str, Result], limits: Limits) -> str:
    head = (
        f"{'shape (api x worker)':<21}{'s':>6}{'requests':>10}{'errors':>8}{'jobs ok/accepted':>18}"
        f"{'twice':>7}{'max live':>10}{'probe granted':>15}{'p50 ms':>8}{'p99 ms':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(
            f"{name:<21}{r.seconds:>6.0f}{r.requests:>10}{len(r.errors):>8}"
            f"{f'{r.jobs_succeeded}/{r.jobs_accepted}':>18}{len(r.jobs_started_twice):>7}"
            f"{f'{r.max_live_jobs}/{limits.live_jobs}':>10}"
            f"{f'{r.probe_granted}/{limits.requests_per_minute}':>15}{r.p50_ms:>8.0f}{r.p99_ms:>8.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--only", choices=sorted(SHAPES), help="run one shape alone")
    args = parser.parse_args()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    results: dict[str, Result] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tuneforge-scale-") as tmp:
            root = Path(tmp)
            models = root / "base-models"
            models.mkdir()
            for name in [args.only] if args.only else list(SHAPES):
                results[name] = run_shape(name, args.seconds, endpoint, root, models)
                print(f"{name}: {results[name].row()}", flush=True)
    finally:
        server.stop()
    limits = Limits()
    print(table(results, limits))
    for name, r in results.items():
        for error in r.errors[:5]:
            print(f"{name} error: {error}")
    out = Path(__file__).parent / "results" / f"scale_out-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {"seconds": args.seconds, "clients": 32, "limits": vars(limits)},
        "cpu_count": os.cpu_count(),
        "results": {name: {**r.row(), "errors": r.errors[:20]} for name, r in results.items()},
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

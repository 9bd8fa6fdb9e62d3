"""The deployment DESIGN.md promises beyond one machine, all of it here: two API replicas and two workers
(the second set to launch two-process training), each with a data dir of its own, sharing PostgreSQL,
the S3 server's bucket and Redis; 32 clients creating small jobs and calling completions. No request
fails, every accepted job is done exactly once with its model in the bucket, and the organisation's limits
(live jobs, requests per minute) hold across the replicas. `python bench/scale_out.py` prints the same
numbers for the record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _fresh_postgres_database
from tests.system.replicas import Limits, Result, Shared, run_scale_out


@pytest.fixture
def shared(s3_endpoint: str, s3_bucket: str) -> Iterator[Shared]:
    database = _fresh_postgres_database()
    yield Shared(next(database), s3_endpoint=s3_endpoint, bucket=s3_bucket)
    next(database, None)  # drops it


def check(result: Result, limits: Limits) -> None:
    print(f"\nscale-out: {result.row()}")
    assert result.errors == [], result.errors[:10]
    assert result.jobs_accepted >= 1 and result.jobs_succeeded == result.jobs_accepted, result.row()
    assert result.jobs_started_twice == [] and result.objects_missing == []
    assert 1 <= result.max_live_jobs <= limits.live_jobs
    assert result.probe_granted == limits.requests_per_minute
    assert result.counts.get("completion_base", 0) > 0 and result.counts.get("completion_fine_tuned", 0) > 0


@pytest.mark.system
@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_and_two_workers_on_postgres_s3_and_redis_for_a_short_run(
    shared: Shared, tmp_path: Path, shared_models_dir: Path
) -> None:
    limits = Limits(requests_per_minute=120, live_jobs=2)
    check(run_scale_out(shared, tmp_path, shared_models_dir, seconds=15, limits=limits), limits)


@pytest.mark.nightly
@pytest.mark.system
@pytest.mark.postgres
def test_two_replicas_and_two_workers_for_a_minute(
    shared: Shared, tmp_path: Path, shared_models_dir: Path
) -> None:
    limits = Limits()
    result = run_scale_out(shared, tmp_path, shared_models_dir, seconds=60, limits=limits)
    check(result, limits)

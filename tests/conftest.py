"""Shared fixtures. No test touches the network or the user's ~/.tuneforge."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Offline before any Hugging Face library is imported: nothing in the tests may download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["WANDB_MODE"] = "offline"
# A test knob named like a setting, read before the settings are cleared: how long the load test runs
# (tests/system/test_load.py; the five-minute run is TUNEFORGE_LOAD_SECONDS=300).
LOAD_SECONDS = float(os.environ.pop("TUNEFORGE_LOAD_SECONDS", "30"))
for _var in list(os.environ):
    if _var.startswith("TUNEFORGE_"):
        del os.environ[_var]

from tuneforge.settings import Settings  # noqa: E402

# Built-in base models are built once per test session into this shared directory and then reused:
# building is deterministic, so sharing changes no outcome.
_SHARED_MODELS: dict[str, Path] = {}


@pytest.fixture
def settings(tmp_path: Path, shared_models_dir: Path) -> Settings:
    """Settings rooted in a fresh temp data dir, with built-in models linked from the session cache."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    # API keys have their own tests (tests/api/test_auth.py); elsewhere every caller is the default org.
    # In-app tests serve in this process (a child would import torch again, seconds per app); the child
    # process backend has its own tests and serves every system test's `tuneforge serve`.
    return Settings(data_dir=data_dir, auth=False, inference_process=False)


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("base-models")


POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on SQLite and on the PostgreSQL server every machine here runs."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tuneforge.db'}"
        return
    yield from _fresh_postgres_database()


def _fresh_postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"tuneforge_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def trainer_processes(job_id: str) -> list[str]:
    """The pids of live training children of job `job_id` (their command line names its task file)."""
    import subprocess

    found = subprocess.run(["pgrep", "-f", f"jobs/{job_id}/task.json"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto's server mode, as s3fs's own tests use) on a free local port."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in failure reports
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


S3_CREDENTIALS = {"s3_key": "tuneforge-test", "s3_secret": "tuneforge-test", "s3_region": "us-east-1"}


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh bucket on the S3 server."""
    import boto3

    name = f"tuneforge-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_CREDENTIALS["s3_key"],
        aws_secret_access_key=S3_CREDENTIALS["s3_secret"],
        region_name=S3_CREDENTIALS["s3_region"],
    ).create_bucket(Bucket=name)
    return name


def s3_settings(settings: Settings, endpoint: str, bucket: str, **update: object) -> Settings:
    """`settings` with blobs in `bucket` under the prefix `tf` on the S3 server."""
    return settings.model_copy(
        update={"blob_url": f"s3://{bucket}/tf", "s3_endpoint_url": endpoint, **S3_CREDENTIALS, **update}
    )


def s3_objects(endpoint: str, bucket: str) -> dict[str, int]:
    """Every object in `bucket` with its size, listed through the S3 protocol."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["s3_key"],
        aws_secret_access_key=S3_CREDENTIALS["s3_secret"],
        region_name=S3_CREDENTIALS["s3_region"],
    )
    objects: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objects.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
    return objects

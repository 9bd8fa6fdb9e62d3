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

"""Opening the database logs what a migration does, not alembic's start-up boilerplate (a fresh
interpreter, since alembic announces its plugins once, when it is first imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from tuneforge.settings import Settings
from tuneforge.store.db import open_database
open_database(Settings(data_dir=Path(sys.argv[1]))).close()
open_database(Settings(data_dir=Path(sys.argv[1]))).close()
"""


def test_opening_the_database_logs_only_the_migrations_it_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "alembic.runtime.plugins" not in done.stderr
    assert "Context impl" not in done.stderr and "Will assume" not in done.stderr
    assert done.stderr.count("Running upgrade  -> 0001") == 1  # the first open migrates, the second is silent

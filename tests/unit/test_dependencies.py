"""What `pip install tuneforge` promises: fast-moving libraries bounded below their next major (the one
CI tests is inside the bound), and PostgreSQL and XLSX support as extras whose absence is a one-line
error naming the extra."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tuneforge.data.sources import open_source
from tuneforge.errors import MissingExtra
from tuneforge.settings import Settings
from tuneforge.store.db import open_database

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]


def requirements(names: list[str]) -> dict[str, Requirement]:
    return {req.name: req for req in map(Requirement, names)}


@pytest.mark.parametrize("name", ["transformers", "openai", "peft", "fastapi", "pydantic"])
def test_fast_moving_libraries_stop_below_the_next_major(name: str) -> None:
    everything = requirements(PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"])
    installed = Version(version(name))
    uppers = [Version(spec.version) for spec in everything[name].specifier if spec.operator == "<"]
    assert uppers == [Version(f"{installed.major + 1}")], f"{name}: {everything[name]}"
    assert installed in everything[name].specifier


def test_postgres_and_xlsx_are_extras_that_dev_installs() -> None:
    core = requirements(PYPROJECT["dependencies"])
    extras = PYPROJECT["optional-dependencies"]
    assert "psycopg" not in core and "openpyxl" not in core
    assert "psycopg" in requirements(extras["postgres"]) and "openpyxl" in requirements(extras["xlsx"])
    dev = requirements(extras["dev"])["tuneforge"]
    assert {"postgres", "xlsx"} <= dev.extras


def test_reading_xlsx_without_openpyxl_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # what `import openpyxl` meets when not installed
    (tmp_path / "d.xlsx").write_bytes(b"PK not read: the import fails first")
    with pytest.raises(MissingExtra, match=r"pip install 'tuneforge\[xlsx\]'"):
        list(open_source(tmp_path / "d.xlsx").rows())


def test_postgres_url_without_psycopg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(MissingExtra, match=r"pip install 'tuneforge\[postgres\]'"):
        open_database(settings)

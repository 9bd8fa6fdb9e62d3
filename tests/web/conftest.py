"""End-to-end tests of the dashboard: a real `tuneforge serve` and Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium (the Makefile's set-up installs it).
Screenshots of every page land in artifacts/web/ for a person to look at."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.conftest import FAST_RECOVERY, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # the machines have no outside network: without these Chromium keeps dialling Google's hosts
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (make setup installs it)", allow_module_level=True)

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Server]:
    """One server with API keys and one embedded worker for the whole session: the tests share its jobs."""
    data_dir = tmp_path_factory.mktemp("web") / "data"
    data_dir.mkdir()
    (data_dir / "base-models").symlink_to(shared_models_dir, target_is_directory=True)
    server = Server(data_dir, workers=1, env=FAST_RECOVERY, auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_key(web_server: Server) -> str:
    """The key `serve` created on its first start (and kept for the local CLI)."""
    return (web_server.data_dir / "api_key").read_text().strip()


@pytest.fixture(scope="session")
def api(web_server: Server, api_key: str) -> Iterator[httpx.Client]:
    """The API as a plain HTTP client, for set-up the test is not about."""
    with httpx.Client(
        base_url=web_server.base, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageErrors(list[str]):
    """Uncaught exceptions in the page: every test asserts there were none."""


@pytest.fixture
def page(browser: Any, web_server: Server, api_key: str) -> Iterator[Any]:
    """A fresh browser context at desktop width with the API key already stored."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=web_server.base)
    context.add_init_script(f"localStorage.setItem('tuneforge.apiKey', {json.dumps(api_key)})")
    page = context.new_page()
    # 30 s, not 15: on a two-core machine with a bench beside the suite, the playground's first answer
    # (the engine loading a fine-tuned model) once took longer than 15 s; a passing wait returns at once.
    page.set_default_timeout(30_000)
    errors = PageErrors()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def classification_rows(n: int) -> list[dict[str, object]]:
    return [
        {"prompt": f"review {i} ->", "completion": " positive" if i % 2 else " negative"} for i in range(n)
    ]

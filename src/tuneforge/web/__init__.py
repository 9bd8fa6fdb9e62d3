"""The dashboard: static HTML, CSS and ES modules that talk to `/v1` over HTTP like any other client.

`mount(app)` serves them: the page at `/`, its assets under `/dashboard/`. Nothing here reads the
database or calls into the API's code; the browser sends the user's API key on every request."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/dashboard"


def mount(app: FastAPI) -> None:
    """Add the dashboard to an API app. Mounted under its own prefix, not at `/`, so unknown `/v1` paths
    still get the API's JSON error envelope rather than a static 404 page."""
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard")
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)


def index() -> FileResponse:
    # no-cache: the page is tiny, and a stale one after an upgrade would load mismatched modules
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

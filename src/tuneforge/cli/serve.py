"""`tuneforge serve` (the API with embedded workers) and `tuneforge worker` (workers alone)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from tuneforge.cli.common import add_data_dir
from tuneforge.errors import InvalidRequest
from tuneforge.settings import Settings, load_settings

if TYPE_CHECKING:
    from tuneforge.store.db import Database

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the OpenAI-compatible API server (and embedded workers)")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--workers", type=int, default=None, help="embedded job workers; 0 for none (default 1)"
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="accept requests without an API key (loopback addresses only)"
    )
    _add_storage(serve)
    serve.set_defaults(handler=run_serve)

    worker = subparsers.add_parser("worker", help="run job workers against a shared database and blob store")
    worker.add_argument(
        "--one-shot", action="store_true", help="drain the queue (waiting out retry backoffs), then exit"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="jobs run at once by this process")
    _add_storage(worker)
    worker.set_defaults(handler=run_worker)


def _add_storage(parser: argparse.ArgumentParser) -> None:
    add_data_dir(parser)
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
    )


# Files this server and its children create (job outputs, logs, tracking stores) hold organisations'
# data: readable by this user only, whatever umask the shell gave us.
PRIVATE_UMASK = 0o077


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tuneforge.api.app import create_app
    from tuneforge.web import mount as mount_dashboard

    settings = load_settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        workers=args.workers,
        auth=False if args.no_auth else None,
    )
    if not settings.auth and settings.host not in LOOPBACK_HOSTS:
        raise InvalidRequest(
            f"--no-auth is refused on {settings.host}: anyone who can reach it could read your data. "
            "Bind 127.0.0.1, or use API keys (`tuneforge keys create --org ORG`).",
            param="no-auth",
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(PRIVATE_UMASK)
    app = create_app(settings)
    mount_dashboard(app)  # the dashboard at `/`, a client of the `/v1` routes create_app has just added
    if settings.auth:
        _announce_first_key(app.state.database, settings)
    print(
        f"tuneforge serving on http://{settings.host}:{settings.port}/v1 (data: {settings.data_dir})\n"
        f"dashboard: http://{settings.host}:{settings.port}/",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def _announce_first_key(database: Database, settings: Settings) -> None:
    """On first start, create a key for the default organisation, show it once, keep it for the CLI."""
    from tuneforge.store import keys as key_store

    with database.session() as session:
        if key_store.has_keys(session):
            return
        _, secret = key_store.create_key(session, org=settings.organization, name="created by first serve")
    key_store.write_local_key(settings.local_key_path, secret)
    print(
        f"Created an API key for organisation '{settings.organization}' (shown once; the local CLI reads it "
        f"from {settings.local_key_path}):\n  {secret}",
        flush=True,
    )


def run_worker(args: argparse.Namespace) -> int:
    from tuneforge.store.blobs import open_blob_store
    from tuneforge.store.db import open_database
    from tuneforge.worker.pool import WorkerPool

    settings = load_settings(data_dir=args.data_dir, database_url=args.database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(PRIVATE_UMASK)
    from tuneforge.api.app import inference_engine, model_locator
    from tuneforge.api.batch_lines import EngineLines

    database = open_database(settings)
    engine = inference_engine(settings, model_locator(settings))  # for batches; starts on the first one
    pool = WorkerPool(
        settings,
        database,
        open_blob_store(settings),
        concurrency=args.concurrency,
        batch_server=EngineLines(database, engine),
    )
    if args.one_shot:
        ran = pool.run_one_shot()
        engine.close()
        print(f"Queue drained: ran {ran} job(s) and batch(es)")
        return 0
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    pool.start()
    print(f"tuneforge worker running {args.concurrency} slot(s); Ctrl-C to stop", flush=True)
    stopped.wait()
    pool.stop()
    engine.close()
    return 0

"""Engine and sessions for the metadata database (SQLite by default, any SQLAlchemy URL), with
migrations applied by Alembic on open."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.errors import InvalidRequest, MissingExtra
from tuneforge.settings import Settings

_MIGRATIONS = Path(__file__).parent / "migrations"

# Said on every open, whether or not anything is migrated: noise in `tuneforge serve`'s log. What a
# migration actually does ("Running upgrade …") is still logged.
_ALEMBIC_BOILERPLATE = ("Context impl ", "Will assume ")


def _quiet_alembic() -> None:
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, _BoilerplateFilter) for f in migration.filters):
        migration.addFilter(_BoilerplateFilter())


class _BoilerplateFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_ALEMBIC_BOILERPLATE)


class Database:
    """One engine and session factory; `session()` is a unit of work that commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        _quiet_alembic()  # before the import: alembic announces its plugins as it loads them
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()


def open_database(settings: Settings) -> Database:
    private_dir(settings.data_dir)  # with another database too: it holds keys, models and tracking stores
    _private_sqlite_file(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    database.migrate()
    return database


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by this user only, whatever the umask; a data
    directory that already exists is narrowed too, since it holds every organisation's data."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does (it would follow the umask); its -wal and -shm
    files take the database file's mode."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if existing.exists():
            existing.chmod(0o600)


# Every request thread may hold a connection at once: the API's sync routes and dependencies run on
# anyio's default thread limiter (40 tokens), so a smaller pool makes requests queue for 30 s and fail.
REQUEST_THREADS = 40
_SPARE_CONNECTIONS = 24  # workers, the event stream's polls and async routes' short lookups


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        try:
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=REQUEST_THREADS + _SPARE_CONNECTIONS
            )
        except ImportError as exc:  # the URL's driver is not installed
            if url.startswith("postgresql"):
                raise MissingExtra("A PostgreSQL database", "postgres") from exc
            raise
    else:
        # Writers from several processes (server, workers, children) wait for each other instead of
        # failing; connections to a file are cheap, so the pool keeps one per request thread.
        in_memory = url in ("sqlite://", "sqlite:///:memory:")  # one shared connection: no pool to size
        pool = {} if in_memory else {"pool_size": REQUEST_THREADS, "max_overflow": _SPARE_CONNECTIONS}
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "before_cursor_execute", refuse_nul_bytes)
    return engine


def refuse_nul_bytes(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, context: Any, _executemany: bool
) -> None:
    """No stored or looked-up string may hold a NUL byte: PostgreSQL refuses them with an error that
    would be a 500, SQLite would keep them. Every id, name and query value passes here, so one check
    answers both databases alike, with a 400 naming the column the value was for."""
    rows = parameters if isinstance(parameters, list) else [parameters]
    for row in rows:
        values = row.items() if isinstance(row, dict) else zip(_bind_names(context), row, strict=False)
        for name, value in values:
            if isinstance(value, str) and "\x00" in value:
                column = _BIND_SUFFIX.sub("", name)
                column = "id" if column == "pk" else column  # `session.get` binds the key as `pk_1`
                raise InvalidRequest(f"'{column}' must not contain a NUL byte (\\x00).", param=column)


def _bind_names(context: Any) -> list[str]:
    """Names of a positional (SQLite's `?`) statement's parameters, in order."""
    compiled = getattr(context, "compiled", None)
    return list(getattr(compiled, "positiontup", None) or [])


_BIND_SUFFIX = re.compile(r"_\d+$")  # SQLAlchemy names a bound `owner` parameter `owner_1`


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()

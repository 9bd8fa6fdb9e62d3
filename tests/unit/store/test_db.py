"""The connection pool holds one connection per request thread: 32 busy clients used to queue for a
connection for 30 s (a 5 + 10 pool against anyio's 40 request threads) and get 500s."""

from __future__ import annotations

import threading

from sqlalchemy import text

from tuneforge.store.db import REQUEST_THREADS, Database

_WAIT_S = 10.0


def test_every_request_thread_holds_a_connection_at_once(database_url: str) -> None:
    database = Database(database_url)
    all_connected = threading.Barrier(REQUEST_THREADS + 8, timeout=_WAIT_S)
    failures: list[BaseException] = []

    def request() -> None:
        try:
            with database.session() as session:
                session.execute(text("SELECT 1"))  # checks a connection out and keeps it
                all_connected.wait()  # every thread holds its connection at the same time
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=request) for _ in range(REQUEST_THREADS + 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_WAIT_S * 4)
    database.close()
    assert failures == []

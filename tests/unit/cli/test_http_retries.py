"""The client commands' HTTP layer against a real local server that fails first: 429 and 5xx are tried
again after Retry-After (or a backoff), a refused connection too, and what no retry can fix is not."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tuneforge.cli.client.http import ApiClient, ApiError, ServerFailed
from tuneforge.cli.main import main

MODELS = {"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "t"}]}


class FlakyServer(ThreadingHTTPServer):
    """Answers each request with the next planned (status, headers), then with `MODELS` (or an event
    stream for /v1/stream); records when each request came."""

    def __init__(self, plan: list[tuple[int, dict[str, str]]], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.plan = list(plan)
        self.arrivals: list[float] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FlakyServer

    def do_GET(self) -> None:
        self.server.arrivals.append(time.monotonic())
        if self.server.plan:
            status, headers = self.server.plan.pop(0)
            self._send(status, {"error": {"message": f"planned {status}"}}, headers)
        elif self.path.endswith("/stream"):
            body = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send(200, MODELS, {})

    def _send(self, status: int, body: object, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


def serve(server: FlakyServer) -> FlakyServer:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def flaky(request: pytest.FixtureRequest) -> Iterator[FlakyServer]:
    server = serve(FlakyServer(request.param))
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "flaky", [[(503, {}), (429, {"Retry-After-Ms": "300"}), (502, {"Retry-After": "0"})]], indirect=True
)
def test_the_cli_rides_out_503_429_and_502(flaky: FlakyServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api", "-b", flaky.base, "-k", "k", "models.list"]) == 0
    assert json.loads(capsys.readouterr().out) == MODELS
    first, after_503, after_429, _ = flaky.arrivals
    assert after_503 - first >= 0.3  # the first backoff: 0.5 s less its jitter
    assert after_429 - after_503 >= 0.3  # Retry-After-Ms honoured


@pytest.mark.parametrize("flaky", [[(400, {})], [(503, {"Retry-After": "3600"})]], indirect=True)
def test_what_no_retry_fixes_fails_on_the_first_answer(flaky: FlakyServer) -> None:
    started = time.monotonic()
    with pytest.raises((ApiError, ServerFailed), match="planned"):
        ApiClient(flaky.base, "k").get("models")
    assert len(flaky.arrivals) == 1 and time.monotonic() - started < 30  # no 3600 s Retry-After wait


@pytest.mark.parametrize("flaky", [[(500, {"Retry-After": "0"})] * 5], indirect=True)
def test_retries_stop_after_max_retries_with_the_servers_message(flaky: FlakyServer) -> None:
    with pytest.raises(ServerFailed, match="Server error 500: planned 500"):
        ApiClient(flaky.base, "k", max_retries=2).get("models")
    assert len(flaky.arrivals) == 3


@pytest.mark.parametrize("flaky", [[(503, {"Retry-After": "0"})]], indirect=True)
def test_a_stream_is_retried_before_its_first_event(flaky: FlakyServer) -> None:
    assert list(ApiClient(flaky.base, "k").events("GET", "stream")) == [{"n": 1}, {"n": 2}]
    assert len(flaky.arrivals) == 2


def test_a_server_that_is_still_starting_is_waited_for() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    started: list[FlakyServer] = []
    timer = threading.Timer(0.2, lambda: started.append(serve(FlakyServer([], port=port))))
    timer.start()
    try:
        assert ApiClient(f"http://127.0.0.1:{port}/v1", "k").get("models") == MODELS
    finally:
        timer.join()
        for server in started:
            server.shutdown()
            server.server_close()

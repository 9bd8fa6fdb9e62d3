"""The client commands' HTTP layer: JSON calls and server-sent events against a tuneforge (or OpenAI)
server, with every failure turned into a one-line typed error (the server's own message, or which URL
could not be reached). Like the openai SDK, it retries what a later try can fix (429, 5xx, a refused
connection) with exponential backoff, honouring the server's Retry-After."""

from __future__ import annotations

import contextlib
import email.utils
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from tuneforge.errors import TuneforgeError

if TYPE_CHECKING:  # httpx is imported where a request is made: it costs a tenth of a second at start-up,
    import httpx  # which every command (prepare included) would pay for

TIMEOUT_S = 120.0  # uploads and first completions (a model loads) can take a while on a small machine
MAX_RETRIES = 3  # the openai SDK's default is 2; a local server restarting takes a little longer
BACKOFF_S = 0.5  # first wait; doubled each try, with jitter, up to MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is an outage: fail now and say so
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ApiError(TuneforgeError):
    """The server refused the request (4xx); the message is the server's."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"


class ServerFailed(TuneforgeError):
    """The server failed (5xx) or could not be reached: not the caller's input."""

    status: ClassVar[int] = 503


def default_http() -> httpx.Client:
    """The transport; tests swap it for an in-process app's TestClient."""
    import httpx

    return httpx.Client(timeout=TIMEOUT_S)


def normalize_base(base: str) -> str:
    """`http://host:8000` and `http://host:8000/v1/` both mean the `/v1` root; another path is kept."""
    base = base.rstrip("/")
    return base + "/v1" if urlsplit(base).path in ("", "/") else base


class ApiClient:
    """A thin wrapper over httpx.Client; paths are relative to the `/v1` root."""

    def __init__(
        self,
        base: str,
        key: str,
        *,
        http: httpx.Client | None = None,
        max_retries: int = MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = normalize_base(base)
        self.http = http or default_http()
        self.headers = {"Authorization": f"Bearer {key}"}
        self.max_retries = max_retries
        self.sleep = sleep

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.max_retries + 1):
            try:
                with self._errors():
                    response = self.http.request(method, self.url(path), headers=self.headers, **kwargs)
            except ServerFailed as exc:
                self.sleep(self._wait_after_failure(exc, attempt))
                continue
            wait = self._wait_after(response, attempt)
            if wait is None:
                _raise_for_status(response)
                return response
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_present(params)).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=_present(body or {})).json()

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).json()

    def content(self, path: str) -> bytes:
        return self.request("GET", path).content

    def upload(self, path: str, filename: str, data: bytes, purpose: str) -> Any:
        files = {"file": (filename, data, "application/jsonl")}
        return self.request("POST", path, files=files, data={"purpose": purpose}).json()

    def events(self, method: str, path: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The JSON payloads of a server-sent event stream, until `data: [DONE]` or the stream ends.
        Retried like `request`, but only before the first event: a stream cut midway is not replayed."""
        import httpx

        timeout = httpx.Timeout(TIMEOUT_S, read=None)
        for attempt in range(self.max_retries + 1):
            with contextlib.ExitStack() as stack:
                try:
                    with self._errors():
                        stream = self.http.stream(
                            method, self.url(path), headers=self.headers, timeout=timeout, **kwargs
                        )
                        response = stack.enter_context(stream)
                except ServerFailed as exc:
                    self.sleep(self._wait_after_failure(exc, attempt))
                    continue
                if response.status_code >= 400:
                    response.read()  # the error body, for the message or before a retry
                wait = self._wait_after(response, attempt)
                if wait is None:
                    _raise_for_status(response)
                    yield from self._payloads(response)
                    return
            self.sleep(wait)

    def _payloads(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        with self._errors():
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # comments, keep-alives and event names carry nothing we show
                payload = line[len("data:") :].strip()
                if payload == "[DONE]":
                    return
                yield json.loads(payload)

    def _wait_after(self, response: httpx.Response, attempt: int) -> float | None:
        """How long to wait before trying `response`'s request again; None: it is the answer."""
        if attempt >= self.max_retries or response.status_code not in RETRY_STATUSES:
            return None
        asked = retry_after_s(response)
        if asked is not None and asked > MAX_RETRY_AFTER_S:
            return None  # an outage, not a hiccup: say so now
        return backoff_s(attempt, asked)

    def _wait_after_failure(self, exc: ServerFailed, attempt: int) -> float:
        """Only a connection that never opened is retried: after a timeout the server may have done
        the work, and a second try could do it twice."""
        import httpx

        if attempt >= self.max_retries or not isinstance(exc.__cause__, httpx.ConnectError):
            raise exc
        return backoff_s(attempt, None)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise ServerFailed(
                f"The server at {self.base} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ServerFailed(
                f"Could not reach the tuneforge server at {self.base} ({reason}). Start one with "
                "`tuneforge serve`, or point --api-base (TUNEFORGE_API_BASE) at a running one."
            ) from exc


def backoff_s(attempt: int, retry_after: float | None) -> float:
    """The server's Retry-After when it gave one; else 0.5 s, 1 s, 2 s … with ±25 % jitter (so that
    clients refused together do not come back together)."""
    if retry_after is not None:
        return max(0.0, retry_after)
    return min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt) * random.uniform(0.75, 1.25)


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After-Ms (OpenAI's), or Retry-After in seconds or as an HTTP date; None: absent or unreadable."""
    milliseconds = response.headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """Unset options are left out, so the server applies its own defaults."""
    return {key: value for key, value in values.items() if value is not None}


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    message = _error_message(response)
    if response.status_code >= 500:
        raise ServerFailed(f"Server error {response.status_code}: {message}")
    raise ApiError(message)


def _error_message(response: httpx.Response) -> str:
    """The message of OpenAI's envelope `{"error": {"message": …}}`, or the body's first line."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    text = response.text.strip().splitlines()
    return text[0][:200] if text else f"HTTP {response.status_code} from {response.request.url}"

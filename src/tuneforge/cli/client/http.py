"""The client commands' HTTP layer: JSON calls and server-sent events against a tuneforge (or OpenAI)
server, with every failure turned into a one-line typed error (the server's own message, or which URL
could not be reached)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from tuneforge.errors import TuneforgeError

if TYPE_CHECKING:  # httpx is imported where a request is made: it costs a tenth of a second at start-up,
    import httpx  # which every command (prepare included) would pay for

TIMEOUT_S = 120.0  # uploads and first completions (a model loads) can take a while on a small machine


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

    def __init__(self, base: str, key: str, *, http: httpx.Client | None = None) -> None:
        self.base = normalize_base(base)
        self.http = http or default_http()
        self.headers = {"Authorization": f"Bearer {key}"}

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._errors():
            response = self.http.request(method, self.url(path), headers=self.headers, **kwargs)
        _raise_for_status(response)
        return response

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
        """The JSON payloads of a server-sent event stream, until `data: [DONE]` or the stream ends."""
        import httpx

        with self._errors():
            stream = self.http.stream(
                method,
                self.url(path),
                headers=self.headers,
                timeout=httpx.Timeout(TIMEOUT_S, read=None),
                **kwargs,
            )
            with stream as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_status(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, keep-alives and event names carry nothing we show
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        return
                    yield json.loads(payload)

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

"""Typed errors. Each carries the HTTP status and OpenAI's error `type`, `code` and `param`; the API maps
them to OpenAI's envelope in one handler, and the CLI prints their message."""

from __future__ import annotations

from typing import Any, ClassVar


class TuneforgeError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(TuneforgeError):
    status = 400
    type = "invalid_request_error"


class InvalidFile(InvalidRequest):
    """A data file that cannot be used, with the line and field that make it so."""

    default_code = "invalid_file"

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        where = ", ".join(
            part
            for part in (file or "", f"line {line}" if line else "", f"field '{field}'" if field else "")
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, param=field)
        self.file, self.line, self.field = file, line, field


class Unauthorized(TuneforgeError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFound(TuneforgeError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class Conflict(TuneforgeError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(TuneforgeError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimited(TuneforgeError):
    status = 429
    type = "requests"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int | None = None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after_s = retry_after_s


class ModelUnavailable(TuneforgeError):
    """A base model that exists by name but whose weights cannot be loaded here (e.g. no hub access)."""

    status = 400
    type = "invalid_request_error"
    default_code = "model_not_available"


class MissingExtra(TuneforgeError):
    """An optional feature whose dependency is not installed; the message names the extra to install."""

    status = 501
    type = "server_error"
    default_code = "missing_extra"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs an optional dependency: pip install 'tuneforge[{extra}]'")


class EngineUnavailable(TuneforgeError):
    """The inference process stopped mid-request; the next request starts a new one (clients retry 503)."""

    status = 503
    type = "server_error"
    default_code = "engine_unavailable"


class LimitsUnavailable(TuneforgeError):
    """The shared limits' store (Redis) does not answer: nothing is granted unless it is counted."""

    status = 503
    type = "server_error"
    default_code = "limits_unavailable"


class ModelNotLoadable(TuneforgeError):
    """A fine-tuned model or checkpoint that exists but cannot be loaded now (its files unreadable, memory
    short); the cause goes to the server's log, never into the answer (it would name server paths)."""

    status = 503
    type = "server_error"
    default_code = "model_not_loadable"


class TrainingFailed(TuneforgeError):
    """Training could not finish; the message says what to fix."""

    default_code = "training_failed"


class PermissionDenied(TuneforgeError):
    status = 403
    type = "invalid_request_error"
    default_code = "permission_denied"


class InvalidGrader(InvalidRequest):
    """A grader that cannot run here: a bad template, formula or metric, named by grader and field."""

    default_code = "invalid_grader"


class UpstreamUnavailable(TuneforgeError):
    """Another server a command talks to (a migration's source or target) cannot be reached."""

    status = 502
    default_code = "upstream_unavailable"

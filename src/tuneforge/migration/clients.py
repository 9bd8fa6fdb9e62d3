"""The two OpenAI clients of a migration. The SDK retries 429s and 5xx with exponential backoff
(`max_retries`); an answer that says the key has no access becomes one clear error naming the server, and
the key is never part of any message."""

from __future__ import annotations

import openai
from openai import OpenAI

from tuneforge.errors import Unauthorized, UpstreamUnavailable

MAX_RETRIES = 6  # the SDK's backoff doubles from 0.5 s to its 8 s cap: about half a minute of patience
TIMEOUT_S = 120.0  # a large file's download or upload, not a hung server


def connect(base_url: str, api_key: str, *, role: str, max_retries: int = MAX_RETRIES) -> OpenAI:
    """A client whose key has been checked against `base_url` by listing its files."""
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=TIMEOUT_S)
    try:
        client.files.list()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise Unauthorized(
            f"the {role} key has no access to {base_url} ({exc.status_code}); check --{_flag(role)}-api-key"
        ) from None
    except openai.APIConnectionError:
        raise UpstreamUnavailable(f"cannot reach the {role} at {base_url}") from None
    return client


def _flag(role: str) -> str:
    return "from" if role == "source" else "to"

"""Object ids in OpenAI's shapes (`file-…`, `ft-…`, `ftjob-…`), fine-tuned model names, and time."""

from __future__ import annotations

import itertools
import re
import secrets
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime

_ALPHABET = string.ascii_letters + string.digits
_SUFFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,40}$")


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}-{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def now() -> int:
    """Unix seconds, as OpenAI's `created_at` fields."""
    return int(time.time())


def is_valid_suffix(suffix: str) -> bool:
    return bool(_SUFFIX_RE.match(suffix))


def base_in_name(base: str) -> str:
    """The base model as a fine-tuned model's name shows it: a local model directory by its last part (a
    server path does not belong in a name every client sees); hub ids and built-ins as they are."""
    return base.rstrip("/").rsplit("/", 1)[-1] if base.startswith(("/", "./", "../", "~")) else base


def legacy_model_name(base: str, org: str, suffix: str | None, created_at: int) -> str:
    """`<base>:ft-<org>:<suffix>-<YYYY-MM-DD-HH-MM-SS>`, the legacy fine-tunes format."""
    stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d-%H-%M-%S")
    tail = f"{suffix}-{stamp}" if suffix else stamp
    return f"{base_in_name(base)}:ft-{org}:{tail}"


def legacy_model_names(base: str, org: str, suffix: str | None, created_at: int) -> Iterator[str]:
    """Legacy names from `created_at` on, one second later each: where the first is taken, the next free
    one keeps the format (a counter appended would not)."""
    return (legacy_model_name(base, org, suffix, second) for second in itertools.count(created_at))


def may_name_a_fine_tuned_model(name: str) -> bool:
    """Whether `name` could be a fine-tuned model or checkpoint: every name given to one holds a colon
    (both formats here, and `<model>:ckpt-step-<n>`), so a name without one is a base model's."""
    return ":" in name


def job_model_name(base: str, org: str, suffix: str | None, job_id: str) -> str:
    """`ft:<base>:<org>:<suffix>:<id>`, the fine-tuning jobs format (id: the job id's random part)."""
    return f"ft:{base_in_name(base)}:{org}:{suffix or ''}:{job_id.split('-', 1)[-1][:8]}"

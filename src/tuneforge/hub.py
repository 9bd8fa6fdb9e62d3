"""Can a hub model load here? A hub id loads from the local Hugging Face cache or from a hub that answers;
this answers the question in well under a second (a cache lookup, then one cached, time-boxed probe), so
job creation and completions refuse such a model at once instead of after a minute of hub retries."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tuneforge.settings import Settings

PROBE_TTL_S = 60.0  # a hub that comes back (or goes away) is noticed within a minute

_probes: dict[str, tuple[float, bool]] = {}  # endpoint -> (monotonic time checked, reachable)
_lock = threading.Lock()


def in_cache(repo_id: str, settings: Settings) -> bool:
    """A snapshot of `repo_id` with its config is in the local hub cache (what offline loading reads)."""
    snapshots = settings.hub_cache_dir / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob("*/config.json"))


def reachable(settings: Settings) -> bool:
    """The hub endpoint answers (any HTTP status counts). Never true with HF_HUB_OFFLINE set."""
    if settings.hub_offline:
        return False
    endpoint = settings.hub_endpoint
    with _lock:
        cached = _probes.get(endpoint)
    if cached is not None and time.monotonic() - cached[0] < PROBE_TTL_S:
        return cached[1]
    answer = _probe(endpoint, settings.hub_probe_timeout_s)
    with _lock:
        _probes[endpoint] = (time.monotonic(), answer)
    return answer


def unavailable_reason(source: str, settings: Settings) -> str | None:
    """None when the hub id (or aliased local directory) `source` can load here; otherwise why not, as
    a clause: "not in the local Hugging Face cache (…), and HF_HUB_OFFLINE is set"."""
    if Path(source).expanduser().is_dir() or in_cache(source, settings) or reachable(settings):
        return None
    why = (
        "HF_HUB_OFFLINE is set"
        if settings.hub_offline
        else f"the hub at {settings.hub_endpoint} is unreachable"
    )
    return f"not in the local Hugging Face cache ({settings.hub_cache_dir}), and {why}"


def _probe(endpoint: str, timeout_s: float) -> bool:
    """One HEAD request, in a thread so that a slow DNS lookup (which ignores socket timeouts) cannot
    hold the caller past `timeout_s`."""
    result: list[bool] = []

    def attempt() -> None:
        request = urllib.request.Request(endpoint, method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout_s).close()
            result.append(True)
        except urllib.error.HTTPError:
            result.append(True)  # the hub answered, if only to refuse a HEAD
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=attempt, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def forget_probes() -> None:
    """Drop cached probe answers (tests, or after changing the endpoint)."""
    with _lock:
        _probes.clear()

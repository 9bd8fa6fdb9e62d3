"""Hub models that cannot load are known as such at once: offline, unreachable (a probe with a short
timeout, cached), or present in the local Hugging Face cache."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge import catalog, hub
from tuneforge.errors import ModelUnavailable
from tuneforge.settings import Settings


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    hub.forget_probes()
    yield
    hub.forget_probes()


@pytest.fixture
def answering_hub() -> Iterator[str]:
    """A local HTTP server standing in for a reachable hub (it answers HEAD with 404, which counts)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_offline_alias_is_refused_at_once_naming_model_and_what_to_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hub_offline=True)
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as info:
        catalog.resolve_loadable("ada", settings)
    assert time.monotonic() - started < 5.0  # no wait on the network: a hung probe would never end
    assert info.value.param == "model" and info.value.status == 400
    assert "HuggingFaceTB/SmolLM2-135M" in info.value.message
    assert "TUNEFORGE_MODEL_ALIASES" in info.value.message and "HF_HUB_OFFLINE" in info.value.message
    assert catalog.resolve_loadable("tiny", settings).kind == "builtin"


def test_a_cached_snapshot_loads_offline(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hub_offline=True)
    snapshot = settings.hub_cache_dir / "models--HuggingFaceTB--SmolLM2-135M" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert catalog.resolve_loadable("ada", settings).source == "HuggingFaceTB/SmolLM2-135M"
    assert catalog.unavailable_reason(catalog.resolve("davinci", settings), settings) is not None


def test_alias_to_a_local_directory_is_available(tmp_path: Path) -> None:
    local = tmp_path / "smol"
    local.mkdir()
    settings = Settings(data_dir=tmp_path, hub_offline=True, model_aliases={"ada": str(local)})
    assert catalog.unavailable_reason(catalog.resolve("ada", settings), settings) is None


def test_unreachable_hub_fails_fast_and_the_answer_is_cached(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(data_dir=tmp_path, hub_offline=False, hub_endpoint=endpoint)
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        catalog.resolve_loadable("Qwen/Qwen2.5-0.5B", settings)
    assert time.monotonic() - started < 5.0  # no wait on the network: a hung probe would never end
    assert hub._probes[endpoint][1] is False


def test_reachable_hub_makes_hub_ids_available(tmp_path: Path, answering_hub: str) -> None:
    settings = Settings(data_dir=tmp_path, hub_offline=False, hub_endpoint=answering_hub)
    assert catalog.resolve_loadable("davinci-002", settings).source == "Qwen/Qwen2.5-1.5B"


def test_slow_probe_is_cut_at_its_timeout(tmp_path: Path) -> None:
    # A listening socket that never accepts: the connection hangs like a blackholed route.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(data_dir=tmp_path, hub_endpoint=endpoint, hub_probe_timeout_s=0.3)
        started = time.monotonic()
        assert hub.reachable(settings.model_copy(update={"hub_offline": False})) is False
        assert time.monotonic() - started < 5.0  # no wait on the network: a hung probe would never end


def test_hub_offline_comes_from_hf_hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert Settings(data_dir=tmp_path).hub_offline is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert Settings(data_dir=tmp_path).hub_offline is False

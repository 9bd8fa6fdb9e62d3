"""Every client command finds the server and key the same way (`connection_from`): `tuneforge eval`
like `tuneforge api`, flags before the environment before the local server's data dir; and `eval`
through a real server finds the key `serve` wrote."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tuneforge.api.app import create_app
from tuneforge.cli.client.connection import Connection, connection_from
from tuneforge.cli.main import build_parser, main
from tuneforge.settings import Settings
from tuneforge.store import keys as key_store

COMMANDS = {
    "api": ["api", "{flags}", "models.list"],
    "eval": ["eval", "-m", "tiny", "-f", "t.jsonl", "{flags}"],
    "plot": ["api", "{flags}", "fine_tunes.plot", "-i", "ft-x"],
}


def resolved(command: str, *flags: str) -> Connection:
    argv = [part for word in COMMANDS[command] for part in (flags if word == "{flags}" else [word])]
    return connection_from(build_parser().parse_args(argv))


def test_api_and_eval_resolve_base_and_key_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "api_key").write_text("sk-from-serve\n")
    local = {name: resolved(name, "--data-dir", str(tmp_path)) for name in COMMANDS}
    assert set(local.values()) == {Connection("http://127.0.0.1:8000/v1", "sk-from-serve", named=False)}

    monkeypatch.setenv("TUNEFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:9000")
    from_env = {resolved(name) for name in COMMANDS}
    assert from_env == {Connection("http://gpu-box:9000/v1", "sk-from-serve", named=True)}

    flags = {resolved(name, "-b", "http://other/v1", "-k", "sk-flag") for name in COMMANDS}
    assert flags == {Connection("http://other/v1", "sk-flag", named=True)}


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """A real tuneforge server with API keys on, whose first key sits in its data dir as `serve` leaves it."""
    settings = settings.model_copy(update={"auth": True})
    app = create_app(settings, workers=0)
    with app.state.database.session() as session:
        _, secret = key_store.create_key(session, org="default")
    key_store.write_local_key(settings.local_key_path, secret)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(30)


def test_eval_through_a_server_uses_the_key_serve_wrote(
    live_server: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"prompt": f"item {i} ->", "completion": " yes" if i % 2 else " no"} for i in range(4)]
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    eval_args = ["eval", "-m", "tiny", "-f", str(test_file), "--data-dir", str(settings.data_dir)]

    assert main([*eval_args, "-b", live_server]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main([*eval_args, "-b", live_server, "-k", "sk-wrong"]) == 2
    assert "Incorrect API key" in capsys.readouterr().err

"""Which server the client commands talk to, and with which key: one resolution for every command that
speaks HTTP (`api …`, `eval`, `quickstart`, the plot commands): flags, then TUNEFORGE_API_* , then
OPENAI_*, then the local server (host/port, and the key `serve` wrote into the data dir). And how they
print what it answers."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.cli.client.http import ApiClient, normalize_base
from tuneforge.settings import load_settings


@dataclass(frozen=True)
class Connection:
    base: str  # the `/v1` root
    key: str
    named: bool  # the user named a server (flag or environment), rather than the local default


def add_connection_flags(parser: argparse.ArgumentParser, *, data_dir: bool = True) -> None:
    parser.add_argument(
        "-b", "--api-base", "--api_base", dest="api_base", default=None,
        help="server URL, e.g. http://127.0.0.1:8000/v1 (default: $TUNEFORGE_API_BASE, $OPENAI_BASE_URL, "
        "then the local server)",
    )  # fmt: skip
    parser.add_argument(
        "-k", "--api-key", "--api_key", dest="api_key", default=None,
        help="API key (default: $TUNEFORGE_API_KEY, $OPENAI_API_KEY, then the key `tuneforge serve` wrote "
        "into the data dir)",
    )  # fmt: skip
    if data_dir:
        parser.add_argument(
            "--data-dir", type=Path, default=None,
            help="the local server's data dir, for its key (default: $TUNEFORGE_DATA_DIR, then ~/.tuneforge)",
        )  # fmt: skip


def connection_from(args: argparse.Namespace) -> Connection:
    settings = load_settings(
        data_dir=getattr(args, "data_dir", None),
        api_base=getattr(args, "api_base", None),
        api_key=getattr(args, "api_key", None),
    )
    base = normalize_base(settings.client_api_base())
    return Connection(base, settings.client_api_key(), named=settings.explicit_api_base() is not None)


def client_from(args: argparse.Namespace) -> ApiClient:
    connection = connection_from(args)
    return ApiClient(connection.base, connection.key)


def show(obj: Any) -> None:
    """Objects print as the JSON the server sent, as the legacy CLI printed them: easy to pipe to jq."""
    print(json.dumps(obj, indent=2, ensure_ascii=False))

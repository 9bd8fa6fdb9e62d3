"""Which server the client commands talk to (flags, then TUNEFORGE_API_*, then OPENAI_*), and how they
print what it answers."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tuneforge.cli.client.http import ApiClient
from tuneforge.settings import load_settings


def client_from(args: argparse.Namespace) -> ApiClient:
    settings = load_settings(api_base=getattr(args, "api_base", None), api_key=getattr(args, "api_key", None))
    return ApiClient(settings.client_api_base(), settings.client_api_key())


def show(obj: Any) -> None:
    """Objects print as the JSON the server sent, as the legacy CLI printed them: easy to pipe to jq."""
    print(json.dumps(obj, indent=2, ensure_ascii=False))

"""The `tuneforge` command. Each command module registers its subcommands; heavy imports happen inside
the handlers, so `tuneforge --help` never imports torch."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tuneforge.errors import TuneforgeError

# Modules under tuneforge.cli that define `register(subparsers)`.
COMMAND_MODULES = [
    "models",
    "train",
    "export",
    "serve",
    "keys",
    "prepare",
    "eval",
    "tracking",
    "client",
    "quickstart",
    "migrate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuneforge",
        description="Fine-tune open-weight language models behind the OpenAI fine-tuning API.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tuneforge.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except TuneforgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 2 if exc.status < 500 else 1
    except KeyboardInterrupt:
        return 130

"""Flags and helpers shared by the command modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuneforge.settings import Settings, load_settings


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where tuneforge keeps its state (default: $TUNEFORGE_DATA_DIR, then ~/.tuneforge)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
    )

"""`tuneforge migrate`: copy an organisation's fine-tune files and jobs from any OpenAI-compatible server
(OpenAI itself) to tuneforge, retrain there, and compare the new models' answers with the old ones.
Resumable: run it again after any interruption; a finished migration run again creates nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tuneforge.cli.common import add_data_dir, settings_from


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate", help="move fine-tuning files and jobs from OpenAI (or any compatible server) to tuneforge"
    )
    parser.add_argument(
        "--from-base-url", required=True, help="the source API, e.g. https://api.openai.com/v1"
    )
    parser.add_argument("--from-api-key", required=True, help="the source key (never stored or printed)")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="SOURCE_BASE=OUR_BASE",
        help="the base model to train on here for a source base (repeat per base)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--jobs", nargs="+", metavar="ID", help="source job or fine-tune ids (and their parents)"
    )
    which.add_argument("--all", action="store_true", help="every source job that succeeded (the default)")
    parser.add_argument(
        "--golden", type=Path, metavar="FILE", help='JSONL of {"prompt": …} or {"messages": […]}'
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and estimate; change nothing")
    parser.add_argument("--to-api-base", help="the tuneforge API (default: as `tuneforge api`)")
    parser.add_argument("--to-api-key", help="its key (default: as `tuneforge api`)")
    parser.add_argument("--state", type=Path, help="the state file (default: under the data dir, per source)")
    parser.add_argument("--tokens-per-second", type=float, help="training speed here, for the estimate")
    add_data_dir(parser)
    parser.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from tuneforge.migration import golden
    from tuneforge.migration.clients import connect
    from tuneforge.migration.execute import Migration
    from tuneforge.migration.plan import DEFAULT_TOKENS_PER_SECOND, build_plan, parse_map, render_plan
    from tuneforge.migration.source import read_inventory
    from tuneforge.migration.state import MigrationState, default_state_path
    from tuneforge.settings import load_settings

    mapping = parse_map(args.map)
    lines = golden.read_golden(args.golden) if args.golden else None
    source = connect(args.from_base_url, args.from_api_key, role="source")
    plan = build_plan(read_inventory(source), mapping, args.jobs)
    if args.dry_run:
        print(
            render_plan(plan, args.from_base_url, args.tokens_per_second or DEFAULT_TOKENS_PER_SECOND), end=""
        )
        return 0
    client = load_settings(api_base=args.to_api_base, api_key=args.to_api_key, data_dir=args.data_dir)
    target = connect(client.client_api_base(), client.client_api_key(), role="target")
    state_path = args.state or default_state_path(settings_from(args).data_dir, args.from_base_url)
    state = MigrationState.load(state_path, args.from_base_url)
    Migration(source, target, state, state_path, say=lambda line: print(line, flush=True)).run(plan, lines)
    print(
        f"Migrated {len(state.files)} files and {len(state.jobs)} jobs; state in {state_path}",
        file=sys.stdout,
    )
    return 0

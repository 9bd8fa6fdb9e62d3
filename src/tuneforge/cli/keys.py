"""`tuneforge keys create|list|revoke`: API keys, managed on the server's host (database access)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tuneforge.cli.common import add_data_dir
from tuneforge.settings import load_settings

if TYPE_CHECKING:
    from tuneforge.store.db import Database


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    verbs = keys.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="create a key for an organisation; it is printed once")
    create.add_argument("--org", required=True, help="the organisation the key acts for")
    create.add_argument("--name", default="", help="a label to tell keys apart")
    list_parser = verbs.add_parser("list", help="every key, with its organisation and state")
    revoke = verbs.add_parser("revoke", help="revoke a key; it stops working on the next request")
    revoke.add_argument("key_id")
    for parser, handler in ((create, create_key), (list_parser, list_keys), (revoke, revoke_key)):
        add_data_dir(parser)
        parser.add_argument("--database-url", default=None)
        parser.set_defaults(handler=handler)


def _database(args: argparse.Namespace) -> Database:
    from tuneforge.store.db import open_database

    return open_database(load_settings(data_dir=args.data_dir, database_url=args.database_url))


def create_key(args: argparse.Namespace) -> int:
    from tuneforge.store import keys as key_store

    with _database(args).session() as session:
        row, secret = key_store.create_key(session, org=args.org, name=args.name)
    print(f"Created {row.id} for organisation '{row.owner}'. The key is shown once; keep it safe:\n{secret}")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    from tuneforge.store import keys as key_store

    with _database(args).session() as session:
        rows = key_store.list_keys(session)
    print(f"{'ID':<30} {'ORG':<20} {'KEY':<10} {'CREATED':<20} STATE  NAME")
    for row in rows:
        created = datetime.fromtimestamp(row.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        state = "revoked" if row.revoked_at else "active"
        print(f"{row.id:<30} {row.owner:<20} ...{row.hint:<7} {created:<20} {state:<6} {row.name}")
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    from tuneforge.store import keys as key_store

    with _database(args).session() as session:
        row = key_store.revoke(session, args.key_id)
    print(f"Revoked {row.id} (organisation '{row.owner}')")
    return 0

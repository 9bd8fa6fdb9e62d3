"""`tuneforge models list|show`: the base models this installation can fine-tune, and where each resolves."""

from __future__ import annotations

import argparse
from typing import Any

from tuneforge import catalog
from tuneforge.cli.common import add_data_dir, settings_from


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list and describe base models")
    verbs = models.add_subparsers(dest="verb", metavar="VERB", required=True)
    list_parser = verbs.add_parser("list", help="built-in models and aliases, with where each resolves")
    add_data_dir(list_parser)
    list_parser.set_defaults(handler=list_models)
    show = verbs.add_parser("show", help="the model card of a base model")
    show.add_argument("name")
    add_data_dir(show)
    show.set_defaults(handler=show_model)


def list_models(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rows = catalog.listing(settings)
    width = max(len(ref.name) for ref in rows)
    print(f"{'NAME':<{width}}  KIND     RESOLVES TO")
    for ref in rows:
        target = catalog.BUILTIN_MODELS[ref.name] if ref.kind == "builtin" else ref.source
        missing = catalog.unavailable_reason(ref, settings)
        print(f"{ref.name:<{width}}  {ref.kind:<7}  {target}" + ("  (unavailable here)" if missing else ""))
    return 0


def show_model(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ref = catalog.resolve(args.name, settings)
    if ref.kind == "builtin":
        from tuneforge.training.base_models import model_card

        print(model_card(ref.source), end="")
    else:
        print(f"{ref.name}: {ref.describe()}")
    return 0

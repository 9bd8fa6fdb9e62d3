"""`tuneforge eval -m MODEL -f TEST.jsonl`: run a model over a test file through the inference engine (the
code behind `/v1/completions`) and report task metrics; `--compare MODEL2` adds a second model side by side
on the same examples (e.g. the base model against its fine-tune)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from tuneforge.cli.client.connection import add_connection_flags, connection_from
from tuneforge.cli.common import settings_from


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model on a test file (classification, generation, …)"
    )
    parser.add_argument(
        "-m", "--model", required=True, help="fine-tuned model name, base model, or directory"
    )
    parser.add_argument(
        "-f", "--file", required=True, type=Path, help="test JSONL in the training data's format"
    )
    parser.add_argument(
        "--task", choices=("classification", "generation", "extraction"), default="classification"
    )
    parser.add_argument("--compare", metavar="MODEL2", help="a second model to evaluate on the same file")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the full report (with predictions)")
    parser.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="write the confusion matrix and reliability diagram PNGs here (default: beside --json)",
    )
    parser.add_argument("--max-tokens", type=int, help="generation budget (default: longest reference + 16)")
    parser.add_argument("--seed", type=int, default=0)
    # The server, key and data dir resolve as for `tuneforge api`: with a server named (-b,
    # TUNEFORGE_API_BASE or OPENAI_BASE_URL) the examples go through its /v1/completions; otherwise the
    # model loads in this process from the data dir's store.
    add_connection_flags(parser)
    parser.set_defaults(handler=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from tuneforge.evaluation.report import render
    from tuneforge.evaluation.run import EvalOptions
    from tuneforge.evaluation.service import evaluate_file

    settings = settings_from(args)
    options = EvalOptions(task=args.task, max_tokens=args.max_tokens, seed=args.seed)
    models = [args.model, *([args.compare] if args.compare else [])]
    connection = connection_from(args)
    server = (connection.base, connection.key) if connection.named else None
    result = evaluate_file(settings, models, args.file, options, server=server)
    print(render(result["reports"]), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nReport written to {args.json}")
    plots = args.plots or (args.json.parent if args.json else None)
    if plots is not None and args.task == "classification":
        for path in write_plots(result["reports"], plots, stem=args.json.stem if args.json else "eval"):
            print(f"Plot written to {path}")
    return 0


def write_plots(reports: list[dict[str, Any]], directory: Path, *, stem: str) -> list[Path]:
    from tuneforge.evaluation.plots import confusion_png, reliability_png

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", report["model"]).strip("_")
        for kind, draw in (("confusion", confusion_png), ("reliability", reliability_png)):
            path = directory / f"{stem}.{slug}.{kind}.png"
            path.write_bytes(draw(report["metrics"], report["model"]))
            written.append(path)
    return written

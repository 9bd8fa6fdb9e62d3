"""`tuneforge export`: copy a fine-tuned model out, LoRA adapters merged into full weights with --merge, so
vLLM, TGI or plain transformers can serve it without tuneforge or peft."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tuneforge.cli.common import add_data_dir, settings_from


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="export a fine-tuned model (merged full weights)")
    parser.add_argument("model_dir", type=Path, help="a fine-tuned model directory (holds tuneforge.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the export")
    parser.add_argument("--merge", action="store_true", help="merge LoRA adapters into full weights")
    add_data_dir(parser)
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from tuneforge.training.export import export

    target = export(args.model_dir, args.output, settings_from(args), merge=args.merge)
    print(f"Exported to {target}")
    return 0

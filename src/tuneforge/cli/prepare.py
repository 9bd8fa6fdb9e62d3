"""`tuneforge prepare -f FILE` (also `tuneforge tools fine_tunes.prepare_data`, the legacy spelling): check a
data file, ask about each suggested fix, write the prepared JSONL and print the command to train on it."""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge import catalog
from tuneforge.cli.common import add_data_dir, settings_from
from tuneforge.errors import ModelUnavailable
from tuneforge.settings import Settings

if TYPE_CHECKING:  # the data layer is imported inside the handler, keeping `tuneforge --help` fast
    from tuneforge.data.report import Fix
    from tuneforge.data.sources import Source
    from tuneforge.data.writer import WriteResult

DEFAULT_MODEL = "tiny"  # the built-in base model: its tokenizer is always available, with no download


def register(subparsers: Any) -> None:
    prepare = subparsers.add_parser(
        "prepare", help="check and fix a fine-tuning data file (JSONL, JSON, CSV, TSV, TXT or XLSX)"
    )
    _add_arguments(prepare)
    tools = subparsers.add_parser("tools", help="the legacy `openai tools` commands")
    verbs = tools.add_subparsers(dest="tool", metavar="TOOL", required=True)
    legacy = verbs.add_parser("fine_tunes.prepare_data", help="the same as `tuneforge prepare`")
    _add_arguments(legacy)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", required=True, type=Path, help="the data file to analyse")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="accept every suggestion without asking (for scripts)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"base model whose tokenizer counts tokens and whose context limits length (default: "
        f"{DEFAULT_MODEL}, the built-in)",
    )
    parser.add_argument(
        "--json", dest="json_report", type=Path, default=None, help="also write the report here"
    )
    add_data_dir(parser)
    parser.set_defaults(handler=prepare_data)


def prepare_data(args: argparse.Namespace) -> int:
    # Both passes allocate a few objects per row (dicts, strings) and keep none in cycles: the cyclic
    # collector would run some 800 times and find nothing, about 5% of the command's time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _prepare(args)
    finally:
        if collecting:
            gc.enable()


def _prepare(args: argparse.Namespace) -> int:
    from tuneforge.data.prepare import analyse
    from tuneforge.data.tokens import TokenizerFileCounter
    from tuneforge.data.writer import describe_next_steps, unchanged_result, write_prepared

    settings = settings_from(args)
    model = args.model or DEFAULT_MODEL
    counter = TokenizerFileCounter.from_dir(tokenizer_dir(model, settings))
    print("Analyzing...")
    report = analyse(args.file, counter, model=model)
    for finding in report.findings:
        print(f"\n- {finding}")
    accepted = _ask_fixes(report.fixes, quiet=args.quiet)
    necessary = any(fix.kind == "necessary" for fix in report.fixes)
    source = _source(args.file)
    if not necessary and not accepted:
        result = unchanged_result(source, report)
        print("\nYou can use your file for fine-tuning as it is.")
    elif _confirm("\nYour data will be written to a new JSONL file. Proceed", quiet=args.quiet):
        result = write_prepared(source, report, accepted)
        print(f"\nWrote {' and '.join(f'`{name}`' for name in result.files)} ({_counts(result.counts)}).")
    else:
        print("Aborting... did not write the file")
        return 1
    describe_next_steps(report, result, accepted, args.model)
    _print_next_steps(result)
    if args.json_report is not None:
        payload = {"report": report.to_dict(), "accepted": sorted(accepted), "result": result.to_dict()}
        _write_json(args.json_report, payload)
    return 0


def tokenizer_dir(name: str, settings: Settings) -> Path:
    """A local directory holding the tokenizer.json of base model `name`."""
    ref = catalog.resolve(name, settings)
    if ref.kind == "builtin":
        built = settings.models_dir / ref.source
        if (built / "tokenizer.json").exists() and (built / "config.json").exists():
            return built  # already built: no need to import torch to build it
        from tuneforge.training.base_models import materialize

        return Path(materialize(ref, settings))
    path = Path(ref.source) if ref.kind == "local" else _hub_snapshot(ref.source)
    if not (path / "tokenizer.json").exists():
        raise ModelUnavailable(
            f"'{name}' has no tokenizer.json (a fast tokenizer) to count tokens with; use a model that has "
            f"one, or the built-in '{DEFAULT_MODEL}'",
            param="model",
        )
    return path


def _hub_snapshot(repo: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        files = ["tokenizer.json", "tokenizer_config.json", "config.json"]
        return Path(snapshot_download(repo, allow_patterns=files))
    except Exception as exc:  # offline, unknown repo, gated: all mean the same to the user
        raise ModelUnavailable(
            f"Could not get the tokenizer of hub model '{repo}' ({type(exc).__name__}). Without a reachable "
            f"hub, pass --model a local model directory or use the built-in '{DEFAULT_MODEL}'.",
            param="model",
        ) from exc


def _source(path: Path) -> Source:
    from tuneforge.data.sources import open_source

    return open_source(path)


def _ask_fixes(fixes: list[Fix], *, quiet: bool) -> set[str]:
    accepted: set[str] = set()
    if not fixes:
        print("\n\nNo remediations found.")
        return accepted
    print("\n\nBased on the analysis we will perform the following actions:")
    for fix in fixes:
        if fix.kind == "necessary":
            print(f"- [Necessary] {fix.message}")
        elif _confirm(f"- [Recommended] {fix.message}", quiet=quiet):
            accepted.add(fix.id)
    return accepted


def _confirm(question: str, *, quiet: bool) -> bool:
    print(f"{question} [Y/n]: ", end="", flush=True)
    if quiet:
        print("Y")
        return True
    try:
        answer = input()
    except EOFError:  # no terminal: take the default, as an empty answer does
        answer = ""
        print()
    return answer.strip().lower() not in ("n", "no")


def _print_next_steps(result: WriteResult) -> None:
    print(f"\nNow use that file when fine-tuning:\n> {result.next_command}\n")
    for line in result.advice:
        print(f"- {line}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name} examples" for name, n in counts.items())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

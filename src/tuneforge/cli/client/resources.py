"""`tuneforge api files.*`, `models.*` and `completions.create`, as the legacy OpenAI CLI spelt them."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from tuneforge.cli.client.connection import client_from, show
from tuneforge.errors import InvalidRequest


def register(verbs: Any) -> None:
    upload = verbs.add_parser("files.create", help="upload a file")
    upload.add_argument("-f", "--file", required=True, type=Path, help="the local file to upload")
    upload.add_argument("-p", "--purpose", default="fine-tune")
    upload.set_defaults(handler=create_file)
    verbs.add_parser("files.list", help="list uploaded files").set_defaults(handler=list_files)
    verbs.add_parser("models.list", help="list base and fine-tuned models").set_defaults(handler=list_models)
    for name, handler, what in (
        ("files.get", get_file, "show a file"),
        ("files.delete", delete_file, "delete a file"),
        ("models.get", get_model, "show a model"),
        ("models.delete", delete_model, "delete a fine-tuned model"),
    ):
        parser = verbs.add_parser(name, help=what)
        parser.add_argument("-i", "--id", required=True)
        parser.set_defaults(handler=handler)
    _register_completions(verbs)


def _register_completions(verbs: Any) -> None:
    parser = verbs.add_parser("completions.create", help="complete a prompt with a base or fine-tuned model")
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("-p", "--prompt", nargs="+", default=None, help="one or more prompts")
    parser.add_argument("-M", "--max_tokens", type=int, default=None)
    parser.add_argument("-t", "--temperature", type=float, default=None)
    parser.add_argument("-P", "--top_p", type=float, default=None)
    parser.add_argument("-n", "--n", type=int, default=None, help="completions per prompt")
    parser.add_argument(
        "--logprobs", type=int, default=None, help="also show the top N tokens and their odds"
    )
    parser.add_argument("--stop", nargs="+", default=None, help="stop sequences")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--stream", action="store_true", help="print tokens as they come")
    parser.set_defaults(handler=create_completion)


def create_file(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise InvalidRequest(f"file '{args.file}' does not exist", param="file")
    show(client_from(args).upload("files", args.file.name, args.file.read_bytes(), args.purpose))
    return 0


def list_files(args: argparse.Namespace) -> int:
    show(client_from(args).get("files"))
    return 0


def get_file(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"files/{args.id}"))
    return 0


def delete_file(args: argparse.Namespace) -> int:
    show(client_from(args).delete(f"files/{args.id}"))
    return 0


def list_models(args: argparse.Namespace) -> int:
    show(client_from(args).get("models"))
    return 0


def get_model(args: argparse.Namespace) -> int:
    show(client_from(args).get(f"models/{args.id}"))
    return 0


def delete_model(args: argparse.Namespace) -> int:
    show(client_from(args).delete(f"models/{args.id}"))
    return 0


def create_completion(args: argparse.Namespace) -> int:
    client = client_from(args)
    prompt = args.prompt if args.prompt is None or len(args.prompt) > 1 else args.prompt[0]
    body = {
        "model": args.model,
        "prompt": prompt,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "n": args.n,
        "logprobs": args.logprobs,
        "stop": args.stop,
        "seed": args.seed,
    }
    if args.stream:
        for chunk in client.events("POST", "completions", json={**_present(body), "stream": True}):
            for choice in chunk.get("choices", []):
                sys.stdout.write(choice.get("text", ""))
                sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    _print_choices(client.post("completions", body)["choices"], with_logprobs=args.logprobs is not None)
    return 0


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _print_choices(choices: list[dict[str, Any]], *, with_logprobs: bool) -> None:
    for choice in choices:
        if len(choices) > 1:
            print(f"===== Completion {choice['index']} =====")
        print(choice["text"])
        if with_logprobs and choice.get("logprobs"):
            _print_logprobs(choice["logprobs"])


def _print_logprobs(logprobs: dict[str, Any]) -> None:
    """Each generated token with its probability, then the alternatives the server ranked with it."""
    tops = logprobs.get("top_logprobs") or []
    for position, token in enumerate(logprobs.get("tokens") or []):
        chosen = (logprobs.get("token_logprobs") or [None])[position]
        line = f"  {token!r}: {_percent(chosen)}"
        top = tops[position] if position < len(tops) and tops[position] else {}
        others = sorted(top.items(), key=lambda item: -item[1])
        line += "   top: " + ", ".join(f"{alt!r} {_percent(lp)}" for alt, lp in others)
        print(line)


def _percent(logprob: float | None) -> str:
    return "n/a" if logprob is None else f"{100 * math.exp(logprob):.1f}%"

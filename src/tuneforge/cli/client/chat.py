"""`tuneforge api chat_completions.create -m MODEL -g ROLE CONTENT …`, as the legacy OpenAI CLI spelt
it: one message per `-g`, the reply printed (or streamed) as plain text."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tuneforge.cli.client.connection import client_from
from tuneforge.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant")


def register(verbs: Any) -> None:
    parser = verbs.add_parser("chat_completions.create", help="chat with a base or fine-tuned model")
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument(
        "-g", "--message", action="append", nargs=2, metavar=("ROLE", "CONTENT"), required=True,
        help="a message of the conversation (repeat, in order); ROLE is system, user or assistant",
    )  # fmt: skip
    parser.add_argument("-n", "--n", type=int, default=None, help="replies to generate")
    parser.add_argument("-M", "--max-tokens", "--max_tokens", dest="max_tokens", type=int, default=None)
    parser.add_argument("-t", "--temperature", type=float, default=None)
    parser.add_argument("-P", "--top_p", "--top-p", dest="top_p", type=float, default=None)
    parser.add_argument("--stop", nargs="+", default=None, help="stop sequences")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--stream", action="store_true", help="print the reply as it comes")
    parser.set_defaults(handler=create_chat_completion)


def create_chat_completion(args: argparse.Namespace) -> int:
    unknown = sorted({role for role, _ in args.message} - set(ROLES))
    if unknown:
        raise InvalidRequest(
            f"unknown role {unknown[0]!r} in -g; use one of {', '.join(ROLES)}", param="message"
        )
    body = {
        "model": args.model,
        "messages": [{"role": role, "content": content} for role, content in args.message],
        "n": args.n,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "stop": args.stop,
        "seed": args.seed,
    }
    client = client_from(args)
    if args.stream:
        _stream(client.events("POST", "chat/completions", json={**_present(body), "stream": True}))
        return 0
    choices = client.post("chat/completions", body)["choices"]
    for choice in choices:
        if len(choices) > 1:
            print(f"===== Chat Completion {choice['index']} =====")
        print(choice["message"].get("content") or "")
    return 0


def _stream(chunks: Any) -> None:
    """Each delta's text as it arrives, then a newline."""
    for chunk in chunks:
        for choice in chunk.get("choices", []):
            sys.stdout.write(choice.get("delta", {}).get("content") or "")
            sys.stdout.flush()
    sys.stdout.write("\n")


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}

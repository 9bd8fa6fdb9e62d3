"""`tuneforge api …`: the legacy OpenAI CLI's commands (fine_tunes.*, files.*, models.*, completions.create,
chat_completions.create) and fine_tuning.jobs.*, against a running tuneforge server. No torch: they
only speak HTTP."""

from __future__ import annotations

from typing import Any

from tuneforge.cli import tracking
from tuneforge.cli.client import chat, fine_tunes, jobs, resources
from tuneforge.cli.client.connection import add_connection_flags


def register(subparsers: Any) -> None:
    api = subparsers.add_parser(
        "api",
        help="talk to a running server: fine_tunes.*, fine_tuning.jobs.*, files.*, models.*, completions, "
        "chat_completions",
    )
    add_connection_flags(api)
    verbs = api.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for module in (fine_tunes, jobs, resources, chat):
        module.register(verbs)
    tracking.add_plot_commands(verbs)  # fine_tunes.plot and fine_tuning.jobs.plot

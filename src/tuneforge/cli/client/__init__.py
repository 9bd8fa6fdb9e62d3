"""`tuneforge api …`: the legacy OpenAI CLI's commands (fine_tunes.*, files.*, models.*, completions.create)
and fine_tuning.jobs.*, against a running tuneforge server. No torch: they only speak HTTP."""

from __future__ import annotations

from typing import Any

from tuneforge.cli import tracking
from tuneforge.cli.client import fine_tunes, jobs, resources


def register(subparsers: Any) -> None:
    api = subparsers.add_parser(
        "api",
        help="talk to a running server: fine_tunes.*, fine_tuning.jobs.*, files.*, models.*, completions",
    )
    api.add_argument(
        "-b", "--api-base", "--api_base", dest="api_base", default=None,
        help="server URL, e.g. http://127.0.0.1:8000/v1 (default: $TUNEFORGE_API_BASE, $OPENAI_BASE_URL)",
    )  # fmt: skip
    api.add_argument(
        "-k", "--api-key", "--api_key", dest="api_key", default=None,
        help="API key (default: $TUNEFORGE_API_KEY, then $OPENAI_API_KEY)",
    )  # fmt: skip
    verbs = api.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for module in (fine_tunes, jobs, resources):
        module.register(verbs)
    tracking.add_plot_commands(verbs)  # fine_tunes.plot and fine_tuning.jobs.plot

"""The live step bar (step N/total, a line of metrics, time left) that `tuneforge train` draws for local
training and `tuneforge api … --follow` draws for a server's fine-tune; rich is imported on first use."""

from __future__ import annotations

from typing import Any


def start_step_bar() -> tuple[Any, Any]:
    """A started rich `Progress` and its one task; the caller updates `total`, `completed` and `info`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("step"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    task = progress.add_task("train", total=None, info="")
    progress.start()
    return progress, task

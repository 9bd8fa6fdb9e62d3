"""PNG curves of a job's metrics: loss, token and sequence accuracy (training and validation), and the
classification columns when the job computed them. A fixed pixel size, so dashboards can lay them out."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from tuneforge.tracking.results import Row

WIDTH_PX, HEIGHT_PX = 1200, 900
_DPI = 100  # WIDTH_PX / _DPI inches wide; never saved with bbox_inches="tight", which would change the size

_PANELS: list[tuple[str, list[str]]] = [
    ("Loss", ["training_loss", "validation_loss"]),
    ("Token accuracy", ["training_token_accuracy", "validation_token_accuracy"]),
    ("Sequence accuracy", ["training_sequence_accuracy", "validation_sequence_accuracy"]),
]
_PREFERENCE_PANELS: list[tuple[str, list[str]]] = [  # DPO jobs: the preferred output's wins and margin
    ("Loss", ["training_loss", "validation_loss"]),
    ("Reward accuracy", ["training_reward_accuracy", "validation_reward_accuracy"]),
    ("Rewards", ["training_chosen_reward", "training_rejected_reward", "validation_reward_margin"]),
]


def classification_columns(rows: Sequence[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update({key: None for key in row if key.startswith("classification/")})
    return list(seen)


def render_curves(rows: Sequence[Row], title: str) -> bytes:
    """A 2x2 grid of line charts as PNG bytes, WIDTH_PX x HEIGHT_PX."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: no global state, safe in server threads

    figure = Figure(figsize=(WIDTH_PX / _DPI, HEIGHT_PX / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    axes = figure.subplots(2, 2).flatten()
    preference = any("training_reward_accuracy" in row for row in rows)
    panels = [
        *(_PREFERENCE_PANELS if preference else _PANELS),
        ("Classification (validation)", classification_columns(rows)),
    ]
    for ax, (name, columns) in zip(axes, panels, strict=True):
        _panel(ax, rows, name, columns)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _panel(ax: Any, rows: Sequence[Row], name: str, columns: list[str]) -> None:
    ax.set_title(name)
    ax.set_xlabel("step")
    drawn = 0
    for column in columns:
        points = [(row["step"], row[column]) for row in rows if column in row and "step" in row]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        sparse = len(points) < 0.5 * len(rows)  # validation is measured every few steps: show the points
        ax.plot(xs, ys, marker="o" if sparse else None, markersize=3, label=column)
        drawn += 1
    if drawn:
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)

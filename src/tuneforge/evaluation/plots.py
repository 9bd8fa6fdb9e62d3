"""PNG figures of a classification report: the confusion matrix and the reliability diagram."""

from __future__ import annotations

import io
from typing import Any

CONFUSION_PX = (800, 700)
RELIABILITY_PX = (700, 700)
_DPI = 100


def _figure(size_px: tuple[int, int]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: no global state, safe in server threads

    figure = Figure(figsize=(size_px[0] / _DPI, size_px[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)  # no bbox_inches="tight": the size stays as documented
    return buffer.getvalue()


def confusion_png(report: dict[str, Any], title: str) -> bytes:
    """Counts per (gold, predicted) label, gold down the side."""
    labels = [str(label).strip() or repr(label) for label in report["confusion_matrix"]["labels"]]
    matrix = report["confusion_matrix"]["matrix"]
    figure = _figure(CONFUSION_PX)
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro F1 {report['macro']['f1']:.3f}")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color)
    return _png(figure)


def reliability_png(report: dict[str, Any], title: str) -> bytes:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    figure = _figure(RELIABILITY_PX)
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    calibration = report.get("calibration")
    if calibration:
        bins = calibration["bins"]
        ax.bar(
            [b["lower"] for b in bins],
            [b["accuracy"] for b in bins],
            width=[b["upper"] - b["lower"] for b in bins],
            align="edge",
            alpha=0.6,
            edgecolor="black",
            label="accuracy",
        )
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label="bins")
        title += f"\nECE {calibration['ece']:.3f}, Brier {calibration['brier']:.3f}"
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (probability of the predicted label)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _png(figure)

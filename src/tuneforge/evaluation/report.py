"""Evaluation reports as text tables for the terminal (the CLI prints them; the API returns JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_HEADLINE: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "classification": [
        ("accuracy", ("accuracy",)),
        ("macro precision", ("macro", "precision")),
        ("macro recall", ("macro", "recall")),
        ("macro F1", ("macro", "f1")),
        ("weighted F1", ("weighted", "f1")),
        ("ECE", ("calibration", "ece")),
        ("Brier", ("calibration", "brier")),
        ("log loss", ("calibration", "log_loss")),
    ],
    "generation": [
        ("exact match", ("exact_match",)),
        ("BLEU", ("bleu",)),
        ("chrF", ("chrf",)),
        ("ROUGE-L F1", ("rougeL", "f1")),
    ],
    "extraction": [
        ("entity precision", ("precision",)),
        ("entity recall", ("recall",)),
        ("entity F1", ("f1",)),
        ("exact set match", ("exact_set_match",)),
    ],
}


def headline(task: str, found: dict[str, Any]) -> list[tuple[str, float | None]]:
    rows: list[tuple[str, float | None]] = []
    for name, path in _HEADLINE[task]:
        value: Any = found
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        rows.append((name, float(value) if isinstance(value, int | float) else None))
    return rows


def render(reports: Sequence[dict[str, Any]]) -> str:
    """Headline metrics side by side (one column per model), then per-class tables and confusion matrices."""
    task = reports[0]["task"]
    columns = [r["model"] for r in reports]
    table = [headline(task, r["metrics"]) for r in reports]
    lines = [f"{task} on {reports[0]['n']} examples", ""]
    lines += _table(
        ["metric", *columns],
        [[name, *(_fmt(t[i][1]) for t in table)] for i, (name, _) in enumerate(table[0])],
    )
    if task == "classification":
        for report in reports:
            lines += ["", f"{report['model']}: per class", *_per_class(report["metrics"])]
            lines += ["", f"{report['model']}: confusion matrix (rows: gold, columns: predicted)"]
            lines += _confusion(report["metrics"]["confusion_matrix"])
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _name(label: str) -> str:
    return label.strip() or repr(label)


def _per_class(found: dict[str, Any]) -> list[str]:
    rows = [
        [_name(label), _fmt(s["precision"]), _fmt(s["recall"]), _fmt(s["f1"]), str(s["support"])]
        for label, s in found["per_class"].items()
    ]
    return _table(["label", "precision", "recall", "F1", "support"], rows)


def _confusion(confusion: dict[str, Any]) -> list[str]:
    names = [_name(label) for label in confusion["labels"]]
    rows = [[name, *map(str, counts)] for name, counts in zip(names, confusion["matrix"], strict=True)]
    return _table(["", *names], rows)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    return out

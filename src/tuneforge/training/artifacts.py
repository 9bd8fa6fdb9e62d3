"""Model directories on disk: the final output and every checkpoint are loadable HF directories (weights,
tokenizer, tuneforge.json). A checkpoint is written to a temp dir and renamed into place, so a kill at any
moment leaves either no checkpoint or a whole one."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tuneforge.catalog import MANIFEST_NAME

FORMAT_VERSION = 1
STATE_NAME = "trainer_state.pt"  # optimizer, scheduler, RNG and data position: what resuming needs
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 3  # older step checkpoints are removed; each one holds a whole model


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None


def write_model_files(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, manifest: dict[str, Any], target: Path
) -> None:
    """Weights and tokenizer first, the manifest last: its presence marks a complete directory."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    _write_json_atomically(target / MANIFEST_NAME, manifest)


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    manifest: dict[str, Any],
    state: dict[str, Any],
    output_dir: Path,
) -> Path:
    root = output_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{manifest['step']:08d}"
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    write_model_files(model, tokenizer, manifest, staging)
    torch.save(state, staging / STATE_NAME)
    if target.exists():  # the same step saved again after a resume: replace it whole
        shutil.rmtree(target)
    os.replace(staging, target)
    _prune(root)
    return target.resolve()


def latest_checkpoint(output_dir: Path) -> Path | None:
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_NAME).exists() and (p / MANIFEST_NAME).exists()]
    return max(done, key=lambda p: p.name) if done else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    # Our own file, holding RNG states and optimizer tensors: full unpickling is needed and trusted.
    return dict(torch.load(checkpoint / STATE_NAME, weights_only=False))


def _prune(root: Path) -> None:
    for stale in sorted(root.glob(".tmp-*")):  # left by a kill mid-write
        shutil.rmtree(stale, ignore_errors=True)
    for old in sorted(root.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


class ResultsCsv:
    """results.csv, one row per step, flushed as training goes; rewritten whole on resume."""

    def __init__(self, path: Path, columns: Sequence[str], rows: Sequence[dict[str, float]] = ()) -> None:
        self.path, self.columns = path, list(columns)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows([_formatted(row) for row in rows])

    def append(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.columns, extrasaction="ignore").writerow(_formatted(row))


def _formatted(row: dict[str, float]) -> dict[str, Any]:
    return {
        k: (int(v) if k in ("step", "elapsed_tokens", "elapsed_examples") else f"{v:.6g}")
        for k, v in row.items()
    }

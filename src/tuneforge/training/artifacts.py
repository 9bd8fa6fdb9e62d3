"""A run's directory on disk: the final output and every model checkpoint are loadable HF directories
(weights, tokenizer, tuneforge.json); the resume state adds the optimizer and data position. Each is
written to a temp dir and renamed into place, so a kill at any moment leaves either none or a whole one.

    output/                 the final model (after success), results.csv
    output/checkpoints/step-N/   model checkpoints at epoch ends (the newest few kept)
    output/resume/step-N/        the latest resume state (removed when the run succeeds)
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tuneforge.catalog import MANIFEST_NAME
from tuneforge.training import layout
from tuneforge.training.layout import CHECKPOINTS, RESUME, STATE_NAME, complete_steps, step_name

FORMAT_VERSION = 2  # 2: resume state and model checkpoints live apart
LOCK_NAME = ".trainer.lock"
latest_resume_state = layout.latest_resume_state  # the names live in layout.py, torch-free for the worker
step_of = layout.step_of


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None


Weights = dict[str, torch.Tensor] | None  # gathered whole weights of a sharded model; None: the model's own


def write_model_files(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    manifest: dict[str, Any],
    target: Path,
    weights: Weights = None,
) -> None:
    """Weights and tokenizer first, the manifest last: its presence marks a complete directory."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True, state_dict=weights)
    tokenizer.save_pretrained(target)
    _write_json_atomically(target / MANIFEST_NAME, manifest)


def save_model_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    manifest: dict[str, Any],
    output_dir: Path,
    weights: Weights = None,
) -> Path:
    """A loadable model directory for this step (weights, tokenizer, manifest; no optimizer state)."""
    return _write_step_dir(
        output_dir / CHECKPOINTS,
        manifest["step"],
        lambda d: write_model_files(model, tokenizer, manifest, d, weights),
    )


def save_resume_state(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    manifest: dict[str, Any],
    state: dict[str, Any],
    output_dir: Path,
    weights: Weights = None,
) -> Path:
    """Everything a resumed run needs to continue exactly; the previous resume state is removed after
    this one is whole, so a kill at any moment leaves one complete state behind."""

    def write(target: Path) -> None:
        write_model_files(model, tokenizer, manifest, target, weights)
        torch.save(state, target / STATE_NAME)

    path = _write_step_dir(output_dir / RESUME, manifest["step"], write)
    for old in complete_steps(output_dir / RESUME, STATE_NAME)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def model_checkpoints(output_dir: Path) -> list[Path]:
    """This run's complete model checkpoints, oldest first."""
    return complete_steps(output_dir / CHECKPOINTS, MANIFEST_NAME)


def prune_model_checkpoints(output_dir: Path, keep: int) -> None:
    """Keep the newest `keep` model checkpoints on disk (the final model counts as one more)."""
    done = model_checkpoints(output_dir)
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def discard_resume_state(output_dir: Path) -> None:
    """After success: optimizer state is dead weight (a full model's state is twice its weights)."""
    shutil.rmtree(output_dir / RESUME, ignore_errors=True)


def load_state(checkpoint: Path) -> dict[str, Any]:
    # Our own file, holding RNG states and optimizer tensors: full unpickling is needed and trusted.
    return dict(torch.load(checkpoint / STATE_NAME, weights_only=False))


@contextlib.contextmanager
def trainer_lock(output_dir: Path) -> Iterator[bool]:
    """Hold the run directory for this process alone; yields False when another live trainer has it.
    The kernel drops the lock when its holder dies, even by kill -9."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_step_dir(root: Path, step: int, write: Callable[[Path], None]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a kill mid-write
        shutil.rmtree(stale, ignore_errors=True)
    target = root / step_name(step)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    write(staging)
    if target.exists():  # the same step saved again after a resume: replace it whole
        shutil.rmtree(target)
    os.replace(staging, target)
    return target.resolve()


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

"""The names in a run's output directory, torch-free: the recipe writes this layout (artifacts.py) and
the worker reads it, to keep each resume state in an object store while the run goes on.

A step directory is whole once its marker files exist: the manifest is written last of a model's files,
and a resume state's trainer state after them."""

from __future__ import annotations

from pathlib import Path

from tuneforge.catalog import MANIFEST_NAME

STATE_NAME = "trainer_state.pt"  # optimizer, scheduler, RNG and data position: what resuming needs
RESUME = "resume"  # resume state: frequent, internal, only the latest kept, never listed
CHECKPOINTS = "checkpoints"  # model checkpoints: one per epoch end, listed by the API and callable
RESUME_MARKERS = (MANIFEST_NAME, STATE_NAME)  # a resume state is whole once both are there


def step_of(path: Path) -> int:
    return int(path.name.removeprefix("step-"))


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def complete_steps(root: Path, marker: str) -> list[Path]:
    """The whole step directories under `root`, oldest first."""
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / marker).exists() and (p / MANIFEST_NAME).exists()]
    return sorted(done, key=step_of)


def latest_resume_state(output_dir: Path) -> Path | None:
    done = complete_steps(output_dir / RESUME, STATE_NAME)
    return done[-1] if done else None

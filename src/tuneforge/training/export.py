"""Export a fine-tuned model for other servers: LoRA adapters merged into full weights (safetensors), with
the tokenizer (chat template included) and a manifest that says where the weights came from."""

from __future__ import annotations

import shutil
from pathlib import Path

from tuneforge.errors import InvalidRequest
from tuneforge.settings import Settings
from tuneforge.training import artifacts, modeling


def export(model_dir: Path, target: Path, settings: Settings, merge: bool = True) -> Path:
    manifest = artifacts.read_manifest(model_dir)
    if manifest is None:
        raise InvalidRequest(
            f"'{model_dir}' is not a tuneforge fine-tuned model (no tuneforge.json).", param="model"
        )
    if target.resolve() == model_dir.resolve():
        raise InvalidRequest("The export directory must differ from the model directory.", param="output")
    if manifest["method"] == "full" or not merge:  # already whole weights, or the adapter as it is
        shutil.copytree(model_dir, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints"))
        return target
    lineage = modeling.lineage(str(model_dir), settings)
    merged = modeling.load_for_training(lineage, settings, "full", {}, seed=0)
    from tuneforge.training.base_models import load_tokenizer

    tokenizer = load_tokenizer(lineage.ref, settings)
    exported = {**manifest, "method": "full", "merged_from": str(model_dir.resolve())}
    artifacts.write_model_files(merged, tokenizer, exported, target)
    return target

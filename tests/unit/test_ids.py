"""Model names: every fine-tuned model and checkpoint name holds a colon, and no base-model name does, so
the API skips the ownership lookup for base models without ever skipping it for a fine-tuned one."""

from __future__ import annotations

from pathlib import Path

from tuneforge import ids
from tuneforge.catalog import BUILTIN_MODELS
from tuneforge.settings import Settings


def test_fine_tuned_and_checkpoint_names_are_recognised(tmp_path: Path) -> None:
    for suffix in (None, "my-suffix"):
        legacy = ids.legacy_model_name("tiny", "default", suffix, 1_700_000_000)
        job = ids.job_model_name("tiny", "default", suffix, "ftjob-abcdef123456")
        for name in (legacy, job, f"{job}:ckpt-step-50"):
            assert ids.may_name_a_fine_tuned_model(name), name
    base_names = [*BUILTIN_MODELS, *Settings(data_dir=tmp_path).model_aliases, "org/model", str(tmp_path)]
    assert not any(ids.may_name_a_fine_tuned_model(name) for name in base_names)


def test_a_local_model_directory_appears_in_fine_tuned_names_by_its_last_part_only() -> None:
    job = ids.job_model_name("/srv/models/qwen2.5-0.5b/", "acme", "tickets", "ftjob-abcdef123456")
    assert job == "ft:qwen2.5-0.5b:acme:tickets:abcdef12"
    legacy = ids.legacy_model_name("./ckpts/llama", "acme", None, 1_700_000_000)
    assert legacy.startswith("llama:ft-acme:") and "/" not in legacy
    assert ids.job_model_name("Qwen/Qwen2.5-0.5B", "acme", None, "ftjob-x").startswith(
        "ft:Qwen/Qwen2.5-0.5B:"
    )

"""Source objects become the requests that recreate them: "auto" stays "auto", values stay values, the
suffix comes back out of the model name, and the source's own run details are left behind."""

from __future__ import annotations

from tuneforge.migration.source import job_from_object, legacy_from_object, suffix_of


def test_job_keeps_explicit_values_and_auto_and_its_settings() -> None:
    job = job_from_object(
        {
            "id": "ftjob-1",
            "model": "gpt-4o-mini-2024-07-18",
            "status": "succeeded",
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme:support-bot:9xYz",
            "training_file": "file-t",
            "validation_file": "file-v",
            "seed": 42,
            "created_at": 5,
            "metadata": {"team": "cx"},
            "integrations": [{"type": "wandb", "wandb": {"project": "p", "run_id": None}}],
            "method": {
                "type": "dpo",
                "dpo": {"hyperparameters": {"beta": "auto", "n_epochs": 3, "batch_size": None}},
            },
        }
    )
    assert job.method == "dpo" and job.created_at == 5
    assert job.request == {
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto", "n_epochs": 3}}},
        "suffix": "support-bot",
        "seed": 42,
        "metadata": {"team": "cx"},
        "integrations": [{"type": "wandb", "wandb": {"project": "p", "run_id": None}}],
    }


def test_job_without_method_is_supervised_from_its_hyperparameters() -> None:
    job = job_from_object(
        {
            "id": "ftjob-2",
            "model": "gpt-3.5-turbo-0125",
            "status": "succeeded",
            "fine_tuned_model": None,
            "training_file": "file-t",
            "hyperparameters": {"n_epochs": "auto", "learning_rate_multiplier": 0.5},
        }
    )
    assert job.request == {
        "method": {
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": "auto", "learning_rate_multiplier": 0.5}},
        }
    }


def test_legacy_fine_tune_keeps_its_flat_options() -> None:
    job = legacy_from_object(
        {
            "id": "ft-1",
            "model": "curie",
            "status": "succeeded",
            "fine_tuned_model": "curie:ft-acme:intent-2023-03-01-10-20-30",
            "training_files": [{"id": "file-t"}],
            "validation_files": [{"id": "file-v"}],
            "hyperparams": {
                "n_epochs": 4,
                "batch_size": None,
                "learning_rate_multiplier": "auto",
                "compute_classification_metrics": True,
            },
        }
    )
    assert (job.kind, job.training_file, job.validation_file) == ("legacy", "file-t", "file-v")
    assert job.request == {"n_epochs": 4, "compute_classification_metrics": True, "suffix": "intent"}


def test_suffix_of_both_name_formats() -> None:
    assert suffix_of("ft:tiny:default:cls:abcd1234") == "cls"
    assert suffix_of("ft:tiny:default::abcd1234") is None
    assert suffix_of("ada:ft-default:my-model-2024-01-02-03-04-05") == "my-model"
    assert suffix_of(None) is None

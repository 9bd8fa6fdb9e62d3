from __future__ import annotations

from pathlib import Path

from tuneforge.settings import Settings
from tuneforge.worker.child import ChildSpec, command, resource_environment


def spec(**params: object) -> ChildSpec:
    return ChildSpec(
        model="tiny",
        training_file=Path("/blobs/files/file-a"),
        validation_file=Path("/blobs/files/file-b"),
        output_dir=Path("/blobs/jobs/ftjob-x/output"),
        hyperparameters=params,
        seed=3,
        suffix="s",
    )


def test_auto_values_are_left_to_the_recipe_and_explicit_ones_are_passed(tmp_path: Path) -> None:
    argv = command(spec(n_epochs="auto", batch_size=4, prompt_loss_weight=0.01), Settings(data_dir=tmp_path))
    assert "--n_epochs" not in argv
    assert argv[argv.index("--batch_size") + 1] == "4"
    assert {"--resume", "--events", "jsonl", "-v", "/blobs/files/file-b"} <= set(argv)


def test_classification_flags_follow_the_legacy_api(tmp_path: Path) -> None:
    params = {
        "compute_classification_metrics": True,
        "classification_positive_class": " yes",
        "classification_betas": [0.5, 2],
    }
    argv = command(spec(**params), Settings(data_dir=tmp_path))
    assert argv[argv.index("--classification_positive_class") + 1] == " yes"
    assert argv[argv.index("--classification_betas") + 1 :][:2] == ["0.5", "2"]


def test_resource_limits_become_the_childs_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, train_threads=2, train_visible_devices="1")
    assert resource_environment(settings) == {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "1"}
    assert resource_environment(Settings(data_dir=tmp_path)) == {}

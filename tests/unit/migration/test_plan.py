"""The plan is checked before anything is copied: unmapped bases are refused all at once, and a chain of
jobs stays a chain (a selected job brings the job whose model it starts from)."""

from __future__ import annotations

import pytest

from tuneforge.errors import InvalidRequest
from tuneforge.migration.plan import build_plan, parse_map, render_plan
from tuneforge.migration.source import SourceFile, SourceInventory, SourceJob


def job(id: str, model: str, created: int, fine_tuned: str | None, training: str = "file-a") -> SourceJob:
    return SourceJob(
        id=id,
        kind="job",
        model=model,
        status="succeeded",
        fine_tuned_model=fine_tuned,
        training_file=training,
        validation_file=None,
        request={"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}},
        created_at=created,
    )


INVENTORY = SourceInventory(
    files={
        "file-a": SourceFile("file-a", "a.jsonl", 4000),
        "file-b": SourceFile("file-b", "b.jsonl", 800),
        "file-c": SourceFile("file-c", "c.jsonl", 10),
    },
    jobs=[
        job("ftjob-sup", "gpt-4o-mini-2024-07-18", 1, "ft:gpt-4o-mini-2024-07-18:org:cls:sup"),
        job("ftjob-dpo", "ft:gpt-4o-mini-2024-07-18:org:cls:sup", 2, "ft:gpt-4o-mini:org::dpo", "file-b"),
        job("ftjob-other", "gpt-3.5-turbo-0125", 3, "ft:gpt-3.5-turbo-0125:org::x"),
    ],
)


def test_every_unmapped_base_is_named_at_once() -> None:
    with pytest.raises(InvalidRequest) as raised:
        build_plan(INVENTORY, {}, None)
    assert raised.value.param == "map"
    assert "gpt-3.5-turbo-0125, gpt-4o-mini-2024-07-18" in raised.value.message
    assert "--map gpt-3.5-turbo-0125=OUR_BASE --map gpt-4o-mini-2024-07-18=OUR_BASE" in raised.value.message
    assert (
        "ft:" not in raised.value.message
    )  # the chained job's base is the parent's new model, not a name to map


def test_a_selected_child_brings_its_parent_and_starts_from_its_new_model() -> None:
    plan = build_plan(INVENTORY, {"gpt-4o-mini-2024-07-18": "tiny"}, ["ftjob-dpo"])
    assert [(p.job.id, p.base, p.parent) for p in plan.jobs] == [
        ("ftjob-sup", "tiny", None),
        ("ftjob-dpo", None, "ftjob-sup"),
    ]
    assert [f.id for f in plan.files] == ["file-a", "file-b"]  # only what the selected jobs use
    assert plan.training_tokens(plan.jobs[1]) == 800 * 2  # trains on tiny (its parent's base): a byte a token


def test_unknown_job_ids_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="ftjob-nope") as raised:
        build_plan(INVENTORY, {}, ["ftjob-nope"])
    assert raised.value.param == "jobs"


def test_dry_run_plan_lists_files_bytes_bases_and_an_estimate() -> None:
    mapping = {"gpt-4o-mini-2024-07-18": "Qwen/Qwen2.5-0.5B", "gpt-3.5-turbo-0125": "ada"}
    plan = build_plan(INVENTORY, mapping, None)
    text = render_plan(plan, "https://api.openai.com/v1", tokens_per_second=1000)
    assert "3 files (4,810 bytes), 3 jobs" in text
    assert "gpt-3.5-turbo-0125 -> ada" in text and "the new model of ftjob-sup" in text
    assert "2 epochs, ~2,000 tokens, ~2 s" in text  # ftjob-sup: 4,000 bytes / 4 per token, 2 epochs
    assert "Estimated training here: ~4 s for ~4,400 tokens" in text


@pytest.mark.parametrize("pair", ["tiny", "=tiny", "gpt-4o="])
def test_malformed_map_is_refused(pair: str) -> None:
    with pytest.raises(InvalidRequest, match="SOURCE_BASE=OUR_BASE"):
        parse_map([pair])

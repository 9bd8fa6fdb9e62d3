"""The base a fine-tuned model, a checkpoint or a granted checkpoint descends from: continued fine-tunes
are named after it, as OpenAI names them."""

from __future__ import annotations

from pathlib import Path

from tuneforge import ids
from tuneforge.settings import Settings
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store import permissions
from tuneforge.store.db import open_database
from tuneforge.store.tables import CheckpointRow, ModelRow


def test_a_continued_fine_tune_finds_its_base_through_models_checkpoints_and_grants(tmp_path: Path) -> None:
    database = open_database(Settings(data_dir=tmp_path))
    model, checkpoint = "ft:tiny:acme::abcd1234", "ft:tiny:acme::abcd1234:ckpt-step-5"
    with database.session() as session:
        job_store.add_job(
            session, id="ftjob-1", api="fine_tuning.jobs", owner="acme", model="tiny", training_file="f",
            validation_file=None, hyperparameters={}, suffix=None, seed=0, integrations=[],
            status="succeeded",
        )  # fmt: skip
        session.flush()  # the job row first: checkpoints refer to it
        session.add(
            ModelRow(
                id=model, owner="acme", created_at=ids.now(), job_id="ftjob-1", base_model="tiny",
                path="jobs/ftjob-1/output", deleted=False,
            )
        )  # fmt: skip
        session.add(
            CheckpointRow(
                id="ftckpt-1", job_id="ftjob-1", owner="acme", step=5, created_at=ids.now(),
                model_name=checkpoint, metrics={}, path="jobs/ftjob-1/output/checkpoints/step-5",
            )
        )  # fmt: skip
    with database.session() as session:
        assert model_store.base_model_of(session, owner="acme", name="tiny") == "tiny"
        assert model_store.base_model_of(session, owner="acme", name=model) == "tiny"
        assert model_store.base_model_of(session, owner="acme", name=checkpoint) == "tiny"
        # Another organisation sees no lineage until the checkpoint is granted to it.
        assert model_store.base_model_of(session, owner="globex", name=checkpoint) == checkpoint
        permissions.grant(session, owner="acme", model_name=checkpoint, project_ids=["globex"])
    with database.session() as session:
        assert model_store.base_model_of(session, owner="globex", name=checkpoint) == "tiny"

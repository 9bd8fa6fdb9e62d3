"""The migrations build exactly the schema the code declares, and upgrading a database made by an older
release keeps every row it holds (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, select, text

from tuneforge.spec import TrainSpec
from tuneforge.store import db
from tuneforge.store.tables import Base, JobRow

OLD_HYPERPARAMETERS = (
    '{"n_epochs": 3, "batch_size": "auto", "prompt_loss_weight": 0.01, '
    '"compute_classification_metrics": true, "classification_positive_class": " yes"}'
)


def _alembic(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(db._MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_migrated_schema_equals_the_declared_tables(database_url: str) -> None:
    database = db.Database(database_url)
    database.migrate()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.close()
    assert differences == []


def test_upgrading_a_database_from_revision_0002_keeps_its_jobs(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(_alembic(connection), "0002")  # the schema the previous release shipped
        connection.execute(
            text(
                "INSERT INTO jobs (id, seq, api, owner, model, training_file, hyperparameters, seed, "
                "integrations, status, priority, result_files, created_at, updated_at, attempts) VALUES "
                "('ftjob-old', 1, 'fine_tuning.jobs', 'alice', 'tiny', 'file-1', :params, 3, '[]', "
                "'succeeded', 0, '[]', 10, 10, 1)"
            ),
            {"params": OLD_HYPERPARAMETERS},
        )
    engine.dispose()

    database = db.Database(database_url)
    database.migrate()
    with database.session() as session:
        old = session.scalars(select(JobRow)).one()
        assert (old.id, old.owner, old.status, old.job_metadata) == ("ftjob-old", "alice", "succeeded", None)
        spec = TrainSpec.model_validate(old.spec)  # built from the old columns by migration 0004
        assert (spec.model, spec.training_file, spec.seed) == ("tiny", "file-1", 3)
        assert spec.hyperparameters.n_epochs == 3 and spec.hyperparameters.batch_size == "auto"
        assert spec.classification is not None and spec.classification.positive_class == " yes"
        session.execute(insert(JobRow).values(**_new_job_fields()))
    with database.session() as session:
        assert session.get(JobRow, "ftjob-new").job_metadata == {"team": "search"}  # type: ignore[union-attr]
    database.close()


def _new_job_fields() -> dict[str, object]:
    return {
        "id": "ftjob-new", "seq": 2, "api": "fine_tuning.jobs", "owner": "alice", "model": "tiny",
        "training_file": "file-1", "hyperparameters": {}, "seed": 1, "integrations": [], "status": "queued",
        "priority": 0, "result_files": [], "created_at": 11, "updated_at": 11, "attempts": 0,
        "job_metadata": {"team": "search"},
    }  # fmt: skip

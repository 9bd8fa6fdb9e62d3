"""Fine-tuning jobs store their typed TrainSpec (tuneforge.spec) as JSON, and a retry's earliest start

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("run_after", sa.Double(), nullable=True))
    _backfill_specs()


def _backfill_specs() -> None:
    """Jobs stored before the spec existed get one built from their columns, as the routes built them."""
    jobs = sa.table(
        "jobs",
        *(sa.column(name, sa.JSON) for name in ("hyperparameters", "integrations", "spec")),
        *(sa.column(name) for name in ("id", "model", "training_file", "validation_file", "suffix", "seed")),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(jobs).where(jobs.c.spec.is_(None))).mappings():
        connection.execute(jobs.update().where(jobs.c.id == row["id"]).values(spec=_spec(dict(row))))


def _spec(row: dict[str, Any]) -> dict[str, Any]:
    params = row["hyperparameters"] or {}
    if isinstance(params, str):
        params = json.loads(params)
    names = ("n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight")
    classification = None
    if params.get("compute_classification_metrics"):
        classification = {
            "n_classes": params.get("classification_n_classes"),
            "positive_class": params.get("classification_positive_class"),
            "betas": params.get("classification_betas") or [],
        }
    integrations = row["integrations"] or []
    return {
        "model": row["model"],
        "training_file": row["training_file"],
        "validation_file": row["validation_file"],
        "method": {
            "type": "supervised",
            "hyperparameters": {k: params[k] for k in names if params.get(k) not in (None, "auto")},
        },
        "classification": classification,
        "seed": row["seed"],
        "suffix": row["suffix"],
        "integrations": json.loads(integrations) if isinstance(integrations, str) else integrations,
    }


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("run_after")
        batch_op.drop_column("spec")

"""Legacy fine-tunes choose their model's name when created, unique across jobs

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_name", sa.Text(), nullable=True))
        batch_op.create_index("ix_jobs_model_name", ["model_name"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_model_name")
        batch_op.drop_column("model_name")

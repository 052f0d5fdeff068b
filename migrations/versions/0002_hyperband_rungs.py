"""Hyperband rungs on trials: bracket, rung, resource, and the trial a promotion continues

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("bracket", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rung", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resource", JSON, nullable=True))
        batch.add_column(sa.Column("resume_from", BIG_ID, nullable=True))
        batch.add_column(sa.Column("resume", sa.Boolean(), nullable=True))
    # A trial is promoted once: one continuation per (parent, attempt).
    op.create_index(
        "uq_trials_group_id_resume_from_attempt",
        "trials",
        ["group_id", "resume_from", "attempt"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_trials_group_id_resume_from_attempt", table_name="trials")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("resume")
        batch.drop_column("resume_from")
        batch.drop_column("resource")
        batch.drop_column("rung")
        batch.drop_column("bracket")

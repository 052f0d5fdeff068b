"""Trials from the user: enqueued configurations and imported past results

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="algorithm")
        )
    with op.batch_alter_table("groups") as batch:
        batch.add_column(
            sa.Column("injected_trials", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("injected_trials")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("source")

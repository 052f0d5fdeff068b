"""Wide counters: a grid may have more cells than a 32-bit integer counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.alter_column("planned_trials", type_=sa.BigInteger(), existing_nullable=True)
        batch.alter_column("next_index", type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("trials") as batch:
        batch.alter_column("config_index", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.alter_column("config_index", type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("groups") as batch:
        batch.alter_column("next_index", type_=sa.Integer(), existing_nullable=False)
        batch.alter_column("planned_trials", type_=sa.Integer(), existing_nullable=True)

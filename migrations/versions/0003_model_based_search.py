"""Model-based search: why each trial was suggested, and a queue of precomputed suggestions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 17:45:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("reason", JSON, nullable=True))
    op.create_table(
        "suggestion_queue",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("group_id", BIG_ID, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("params_hash", sa.String(length=40), nullable=False),
        sa.Column("reason", JSON, nullable=True),
        sa.Column("basis", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_suggestion_queue_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_queue")),
    )
    op.create_index(
        op.f("ix_suggestion_queue_group_id_basis"), "suggestion_queue", ["group_id", "basis"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_suggestion_queue_group_id_basis"), table_name="suggestion_queue")
    op.drop_table("suggestion_queue")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("reason")

"""A group's spec keeps its key order on PostgreSQL: json, not jsonb

jsonb stores an object's keys sorted by length, then bytes, so a matrix written
{batch_size, lr} came back {lr, batch_size}: grid order ("first key slowest"), a
grid's `n_experiments` cut, and every seeded draw then differed from SQLite's and
from Polyaxon's. The json type keeps the text as written. Rows already stored keep
the order they were read back in, which is the order their searches have used.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's JSON is text already
    op.alter_column(
        "groups",
        "spec",
        type_=sa.JSON(),
        existing_type=postgresql.JSONB(),
        existing_nullable=False,
        postgresql_using="spec::json",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column(
        "groups",
        "spec",
        type_=postgresql.JSONB(),
        existing_type=sa.JSON(),
        existing_nullable=False,
        postgresql_using="spec::jsonb",
    )

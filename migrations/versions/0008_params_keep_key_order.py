"""A trial's params keep the matrix's key order on PostgreSQL: json, not jsonb

jsonb stores an object's keys sorted by length, then bytes, so a trial of a matrix
written {zeta, a} was shown {a, zeta} once read back (SQLite, and the answer to the
suggestion request itself, kept the order). Nothing queries inside params; it is
read whole. Queued suggestions change with them, since their params become trials'.
Rows already stored keep the order they were read back in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:05:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("trials", "suggestion_queue")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's JSON is text already
    for table in TABLES:
        op.alter_column(
            table,
            "params",
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(),
            existing_nullable=False,
            postgresql_using="params::json",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.alter_column(
            table,
            "params",
            type_=postgresql.JSONB(),
            existing_type=sa.JSON(),
            existing_nullable=False,
            postgresql_using="params::jsonb",
        )

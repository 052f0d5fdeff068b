"""A trial keeps the key order of its params, values and reason on PostgreSQL: json

jsonb stores an object's keys sorted by length, then bytes, so a trial of a matrix
written {zeta, a} was shown {a, zeta} once read back, and metrics reported as
{loss, acc} came back {acc, loss} (SQLite, and the answer to the request itself,
kept the order). Nothing queries inside these columns; they are read whole.
Queued suggestions change with trials, since their params and reasons become
trials'. Rows already stored keep the order they were read back in.

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

# (table, column, nullable)
COLUMNS = (
    ("trials", "params", False),
    ("trials", "values", True),
    ("trials", "reason", True),
    ("suggestion_queue", "params", False),
    ("suggestion_queue", "reason", True),
)


def upgrade() -> None:
    _retype(sa.JSON(), postgresql.JSONB(), "json")


def downgrade() -> None:
    _retype(postgresql.JSONB(), sa.JSON(), "jsonb")


def _retype(to: sa.types.TypeEngine, was: sa.types.TypeEngine, cast: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's JSON is text either way
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=to,
            existing_type=was,
            existing_nullable=nullable,
            postgresql_using=f'"{column}"::{cast}',
        )

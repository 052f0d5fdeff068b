"""Projects and API keys: every group belongs to a project

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    # Every group made so far belongs to the default project. (SQLite keeps naive UTC.)
    postgres = op.get_bind().dialect.name == "postgresql"
    now = datetime.now(UTC) if postgres else datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(projects, [{"id": 1, "name": "default", "created_at": now}])
    if postgres:
        op.execute("SELECT setval(pg_get_serial_sequence('projects', 'id'), 1)")
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_api_keys_project_id_projects",
            ondelete="CASCADE",
        ),
    )
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("project_id", BigId, nullable=False, server_default="1"))
        batch.create_foreign_key(
            "fk_groups_project_id_projects", "projects", ["project_id"], ["id"], ondelete="RESTRICT"
        )
        batch.create_index("ix_groups_project_id_id", ["project_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_index("ix_groups_project_id_id")
        batch.drop_constraint("fk_groups_project_id_projects", type_="foreignkey")
        batch.drop_column("project_id")
    op.drop_table("api_keys")
    op.drop_table("projects")

"""The schema. Alembic migrations in migrations/ create exactly these tables.

Services talk to the tables through SQLAlchemy Core: the suggest and complete
paths are a handful of statements each, and Core keeps them visible and cheap.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no time zones: values are stored as naive UTC there, and given
    back aware, so the services never compare naive with aware times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json: Any = JSON().with_variant(JSONB(), "postgresql")
# JSON that keeps an object's keys in the order written (PostgreSQL's json, not jsonb,
# which sorts them): a group's matrix order is its grid order and its draw order, and
# a trial shows its params, values and reason in the order they were written.
OrderedJson: Any = JSON()
# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
BigId: Any = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Teams: every group belongs to one project, and an API key sees only its own project.
projects = Table(
    "projects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# The project "default" (id 1) exists from the migration on: groups made without
# naming a project, and every group made before projects existed, belong to it.
DEFAULT_PROJECT_ID = 1

# API keys: `key_id` is the public part of a key and finds the row; only a SHA-256
# of the secret part is kept, compared in constant time.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("project_id", BigId, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(8), nullable=False),
    Column("name", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

groups = Table(
    "groups",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        BigId,
        ForeignKey("projects.id", ondelete="RESTRICT"),
        nullable=False,
        server_default=str(DEFAULT_PROJECT_ID),
    ),
    Column("name", String(200)),
    Column("description", Text),
    Column("algorithm", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    Column("spec", OrderedJson, nullable=False),
    Column("content", Text),
    Column("seed", BigInteger, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("objective_name", String(200)),
    Column("objective_direction", String(10), nullable=False),
    Column("lease_seconds", Integer, nullable=False),
    # Trials the algorithm will propose in all; NULL when it has no fixed budget.
    Column("planned_trials", BigInteger),
    # How many fresh configurations have been drawn: the next one is number `next_index`.
    Column("next_index", BigInteger, nullable=False, default=0),
    Column("warnings", Json, nullable=False),
    # The `early_stopping` entries of the spec, kept apart so reports need not read `spec`.
    Column("early_stopping", Json),
    # How many trials came from the user or an import: while 0, grid and random
    # search need not check their draws against the group's configurations.
    Column("injected_trials", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Index(None, "status", "id"),
    Index(None, "project_id", "id"),
)

trials = Table(
    "trials",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("group_id", BigId, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    # Which configuration of the algorithm this is (the grid cell, the random draw).
    Column("config_index", BigInteger, nullable=False),
    # 0 for the first hand-out of a configuration, +1 each time an expired lease re-offers it.
    Column("attempt", Integer, nullable=False, default=0),
    Column("params", OrderedJson, nullable=False),
    Column("params_hash", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("worker_id", String(200)),
    Column("lease_expires_at", UTCDateTime),
    Column("objective", Float),
    Column("values", OrderedJson),
    Column("stop_reason", Text),
    Column("replaces_id", BigId),
    # Hyperband: where the trial sits, what it trains with, and the trial it continues.
    Column("bracket", Integer),
    Column("rung", Integer),
    Column("resource", Json),
    Column("resume_from", BigId),
    Column("resume", Boolean),
    # Model-based search: why this configuration was chosen (phase, acquisition, prediction).
    Column("reason", OrderedJson),
    # Who proposed it: the group's `algorithm`, the `user` (enqueued), or an `import`.
    # Trials of the user and imports have negative config_index, apart from the algorithm's.
    Column("source", String(16), nullable=False, server_default="algorithm"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("group_id", "config_index", "attempt"),
    # A trial is promoted once: one continuation per (parent, attempt).
    Index(
        "uq_trials_group_id_resume_from_attempt", "group_id", "resume_from", "attempt", unique=True
    ),
    Index(None, "group_id", "status"),
    Index(None, "group_id", "params_hash"),
    Index(None, "group_id", "objective"),
)

# Suggestions an `hpo worker` computed ahead for model-based groups. `basis` is the
# number of finished trials the model saw: once more have finished, an entry is
# stale and is thrown away rather than handed out.
suggestion_queue = Table(
    "suggestion_queue",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("group_id", BigId, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    Column("params", OrderedJson, nullable=False),
    Column("params_hash", String(40), nullable=False),
    Column("reason", OrderedJson),
    Column("basis", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "group_id", "basis"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("trial_id", BigId, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("trial_id", "name", "step"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # The method and path the key was used on: one key may serve several routes.
    Column("scope", String(300), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("scope", "key"),
)

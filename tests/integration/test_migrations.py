"""The alembic migrations build exactly the tables the code declares, and go both ways."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.db import migrate
from app.db.tables import metadata
from tests.conftest import ADMIN_URL, _libpq


@pytest.fixture
def scratch_postgres(postgres_url: str) -> Iterator[str]:
    name = f"hpo_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_migrations_match_the_tables_and_go_both_ways(
    backend: str, scratch_postgres: str, tmp_path: object
) -> None:
    url = scratch_postgres if backend == "postgres" else f"sqlite:///{tmp_path}/m.db"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head_revision()
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head_revision()

"""Fixtures shared by the test tiers: databases, in-process clients, live servers.

PostgreSQL tests run against the server named by HPO_TEST_POSTGRES_URL
(default: postgres on 127.0.0.1:5432), each session in a database of its own.
Without a reachable server they are skipped, unless HPO_REQUIRE_POSTGRES=1
(as in CI), where that is an error.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app

ADMIN_URL = os.environ.get(
    "HPO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("HPO_REQUIRE_POSTGRES") == "1"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    name = f"hpo_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(_libpq(ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required (HPO_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'hpo.db'}"


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on PostgreSQL and once on SQLite."""
    return request.getfixturevalue(f"{request.param}_url")


def make_client(url: str, **settings: object) -> TestClient:
    app = create_app(Settings(database_url=url, log_level="WARNING", **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def client(database_url: str) -> Iterator[TestClient]:
    """The app in this process, over HTTP semantics, on each database in turn."""
    with make_client(database_url) as c:
        yield c


@pytest.fixture(scope="session")
def pg_client(postgres_url: str) -> Iterator[TestClient]:
    with make_client(postgres_url) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`hpo serve` in a subprocess, as a user starts it."""

    def __init__(
        self,
        database_url: str,
        *,
        workers: int = 1,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HPO_DATABASE_URL": database_url,
            "HPO_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
             "--workers", str(workers)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hpo serve exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("hpo serve did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Two server processes on one database, as `hpo serve --workers 2` runs them."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = LiveServer(database_url, workers=2, log_path=log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two `hpo serve` processes on the PostgreSQL test database."""
    log = tmp_path_factory.mktemp("pg-server") / "server.log"
    server = LiveServer(postgres_url, workers=2, log_path=log)
    yield server
    server.stop()

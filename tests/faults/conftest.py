"""Fixtures of the fault tests: two separate `hpo serve` processes on one PostgreSQL."""

from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer


@pytest.fixture(scope="session")
def server_pair(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two single-process `hpo serve` on their own ports, so a client knows which one it talks to.

    Tests that break a server start their own; these two stay up for the whole session.
    """
    folder = tmp_path_factory.mktemp("server-pair")
    first = LiveServer(postgres_url, workers=1, log_path=folder / "a.log")
    try:
        second = LiveServer(postgres_url, workers=1, log_path=folder / "b.log")
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()

"""PostgreSQL restarts under load: 503 with Retry-After meanwhile, then on as before.

The test starts a PostgreSQL cluster of its own (initdb in a temporary folder,
its own port and socket folder) and leaves the machine's server alone. One
`hpo serve` runs on it while four clients train a random-search group:
suggest, report metrics, complete, each request with an Idempotency-Key and
sent again (same key) on a 503. The cluster is stopped (`pg_ctl stop -m
immediate`, as a crash) and started again a few seconds later while the
clients keep going. While it is down every answer is a 503 problem with
`Retry-After`, never a 500; afterwards the same server process serves again
without being restarted; and everything acknowledged before, during and after
the outage is stored: each metric value, each completion, and each trial
handed out (none was orphaned by a commit whose answer was lost).
"""

import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, free_port
from tests.faults.support import (
    Progress,
    RetryingClient,
    all_trials,
    create_group,
    stored_metrics,
    wait_until,
)

pytestmark = pytest.mark.postgres

CLIENTS = 4
PROBLEM = "application/problem+json"
# Routes asked by hand while the database is down (method, path with {g} for the group).
OUTAGE_ROUTES = [
    ("GET", "/api/v1/groups"),
    ("GET", "/api/v1/groups/{g}"),
    ("GET", "/api/v1/groups/{g}/trials"),
    ("GET", "/api/v1/groups/{g}/metrics"),
    ("GET", "/api/v1/groups/{g}/export"),
    ("GET", "/api/v1/trials/1"),
    ("POST", "/api/v1/groups"),
    ("POST", "/api/v1/groups/{g}/trials"),
    ("POST", "/api/v1/groups/{g}/stop"),
    ("POST", "/api/v1/trials/1/heartbeat"),
]


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, run as the `postgres` OS user when root."""

    def __init__(self, folder: Path) -> None:
        initdb, self.pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            pytest.skip("initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(folder, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}{result.stderr}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        log = str(self.folder / "postgres.log")
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def crash(self) -> None:
        """Stop at once, without a checkpoint: the next start recovers from the WAL."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop_quietly(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as_postgres, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )


@pytest.fixture
def cluster() -> Iterator[ThrowawayCluster]:
    folder = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    try:
        pg = ThrowawayCluster(folder)
        try:
            pg.start()
            yield pg
        finally:
            pg.stop_quietly()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ask_anything(base: str, group_id: int, route: tuple[str, str]) -> httpx.Response:
    method, path = route
    body: dict[str, Any] | None = None
    if path == "/api/v1/groups":
        body = {
            "hptuning": {
                "random_search": {"n_experiments": 2},
                "matrix": {"x": {"uniform": [0, 1]}},
            }
        }
    elif path.endswith("/trials") and method == "POST":
        body = {"params": {"x": 0.5, "k": 2}}
    url = base + path.format(g=group_id)
    return httpx.request(method, url, json=body, timeout=30)


class Client:
    """Trains trials until told to stop; records what the service acknowledged."""

    def __init__(self, base: str, group_id: int, progress: Progress, stop: threading.Event):
        self.api = RetryingClient([base])
        self.group_id, self.progress, self.stop = group_id, progress, stop
        self.handed: list[dict[str, Any]] = []
        self.acked_metrics: dict[tuple[int, str, int], float] = {}
        self.acked_completions: dict[int, dict[str, float]] = {}

    def run(self) -> "Client":
        try:
            while not self.stop.is_set():
                answer = self.api.post(
                    f"/api/v1/groups/{self.group_id}/suggestions", {"count": 1, "wait_seconds": 1}
                )
                assert answer.status_code == 200, answer.text
                for trial in answer.json()["trials"]:
                    self.handed.append(trial)
                    self.train(trial)
        finally:
            self.api.close()
        return self

    def train(self, trial: dict[str, Any]) -> None:
        for step in (1, 2):
            values = {"loss": trial["params"]["x"] / step, "step_seen": float(step)}
            report = self.api.post(
                f"/api/v1/trials/{trial['id']}/metrics", {"values": values, "step": step}
            )
            assert report.status_code == 200, report.text
            self.acked_metrics |= {(trial["id"], n, step): v for n, v in values.items()}
        final = {"loss": trial["params"]["x"] / 3}
        done = self.api.post(
            f"/api/v1/trials/{trial['id']}/complete", {"status": "succeeded", "values": final}
        )
        assert done.status_code == 200, done.text
        self.acked_completions[trial["id"]] = final
        self.progress.bump()


def test_postgres_restart_gives_503_then_recovers_with_nothing_lost(
    cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    server = LiveServer(cluster.url, workers=1, log_path=tmp_path / "server.log")
    try:
        group = create_group(
            server.url,
            {
                "hptuning": {
                    "concurrency": CLIENTS,
                    "random_search": {"n_experiments": 100_000},
                    "matrix": {"x": {"uniform": [0, 1]}, "k": {"values": [1, 2, 3]}},
                },
                "objective": {"name": "loss", "optimization": "minimize"},
            },
        )
        progress, stop = Progress(), threading.Event()
        clients = [Client(server.url, group["id"], progress, stop) for _ in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(c.run) for c in clients]
            try:
                wait_until(lambda: progress.value >= 20, timeout=60, what="20 trials before")
                cluster.crash()
                wait_until(
                    lambda: sum(len(c.api.unavailable) for c in clients) >= 3 * CLIENTS,
                    timeout=30,
                    what="the clients to hear 503s",
                )
                # The other routes, by hand: the same 503 from every one of them.
                during = [ask_anything(server.url, group["id"], route) for route in OUTAGE_ROUTES]
                before_restart = progress.value
                cluster.start()
                wait_until(
                    lambda: progress.value >= before_restart + 20,
                    timeout=60,
                    what="20 trials after the restart",
                )
            finally:
                stop.set()
            for future in running:
                future.result()

        assert server.process.poll() is None, "the API process died"
        trials = all_trials(server.url, group["id"])
        stored = stored_metrics(server.url, group["id"])
    finally:
        server.stop()

    # While the database was down: 503 problems with Retry-After, nothing else.
    for route, answer in zip(OUTAGE_ROUTES, during, strict=True):
        assert answer.status_code == 503, (route, answer.status_code, answer.text)
        assert answer.headers["content-type"] == PROBLEM, route
        assert float(answer.headers["retry-after"]) > 0, route
    statuses = sum((c.api.statuses for c in clients), Counter())
    assert set(statuses) <= {200, 503}, statuses
    seen = [u for c in clients for u in c.api.unavailable]
    assert seen and all(u.retry_after and float(u.retry_after) > 0 for u in seen)
    assert all(u.content_type == PROBLEM and u.body["status"] == 503 for u in seen)
    assert sum(c.api.lost_answers for c in clients) == 0  # the API itself never went away
    log = (tmp_path / "server.log").read_text()
    assert '"request.failed"' not in log and '"database.error"' not in log

    # Everything acknowledged is stored, before the outage and after it.
    acked = {k: v for c in clients for k, v in c.acked_metrics.items()}
    assert {k: stored.get(k) for k in acked} == acked
    by_id = {t["id"]: t for t in trials}
    for c in clients:
        for trial_id, values in c.acked_completions.items():
            assert by_id[trial_id]["status"] == "succeeded"
            assert by_id[trial_id]["values"] == values
    # Every trial of the group reached a client: no suggestion committed unseen.
    handed = Counter(t["id"] for c in clients for t in c.handed)
    assert set(handed.values()) == {1} and set(handed) == set(by_id)

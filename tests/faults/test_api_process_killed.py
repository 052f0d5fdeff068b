"""An API process killed with SIGKILL mid-search loses nothing and duplicates nothing.

Two single-process `hpo serve` share one PostgreSQL database; 32 client threads,
half on each, run a 250-cell grid: suggest, report three steps of metrics,
complete. Every request carries an Idempotency-Key; when its connection breaks,
the client sends the same request with the same key to the other server. A
third of the way in, one server gets `kill -9`, with requests of its 16
clients in flight: some never started, some were rolled back by PostgreSQL,
some committed and lost their answer. At the end every cell was completed
exactly once, no trial was handed out and then lost (a suggestion that
committed on the dead server is what its retry got back from the live one),
and every acknowledged metric value is stored.
"""

import json
import os
import signal
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.faults.support import (
    Progress,
    RetryingClient,
    all_trials,
    create_group,
    get_group,
    logged,
    stored_metrics,
    wait_until,
)

pytestmark = pytest.mark.postgres

CLIENTS = 32
GRID = {
    "concurrency": CLIENTS,
    "matrix": {
        "a": {"values": list(range(10))},
        "b": {"range": [0, 5, 1]},
        "c": {"values": ["p", "q", "r", "s", "t"]},
    },
}
CELLS = 250
STEPS = 3


def metric_values(trial: dict[str, Any], step: int) -> dict[str, float]:
    """What a trial reports at a step: a function of the trial, so a resend is identical."""
    return {"loss": round(1.0 / (step + trial["id"] % 7 + 1), 6), "acc": step / 10}


class Client:
    """One training worker: suggest, report STEPS metrics, complete, until the grid is done."""

    def __init__(self, bases: list[str], start: int, group_id: int, progress: Progress) -> None:
        self.api = RetryingClient(bases, start=start)
        self.group_id = group_id
        self.progress = progress
        self.handed: list[dict[str, Any]] = []
        self.reported: list[tuple[int, int, dict[str, float]]] = []
        self.completed: list[dict[str, Any]] = []

    def run(self) -> "Client":
        try:
            while True:
                answer = self.api.post(
                    f"/api/v1/groups/{self.group_id}/suggestions",
                    {"count": 1, "worker_id": f"w{id(self)}", "wait_seconds": 1},
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                if body["group_status"] == "done":
                    return self
                for trial in body["trials"]:
                    self.handed.append(trial)
                    self.train(trial)
        finally:
            self.api.close()

    def train(self, trial: dict[str, Any]) -> None:
        for step in range(1, STEPS + 1):
            values = metric_values(trial, step)
            report = self.api.post(
                f"/api/v1/trials/{trial['id']}/metrics", {"values": values, "step": step}
            )
            assert report.status_code == 200, report.text
            assert report.json()["should_stop"] is False, report.text
            self.reported.append((trial["id"], step, values))
        done = self.api.post(
            f"/api/v1/trials/{trial['id']}/complete",
            {"status": "succeeded", "values": {"loss": metric_values(trial, STEPS)["loss"]}},
        )
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "succeeded", done.text
        self.completed.append(done.json())
        self.progress.bump()


def send_and_hang_up(server: LiveServer, path: str, body: dict[str, Any], key: str) -> None:
    """POST a request and close the connection without reading the answer."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(head.encode() + payload)


def test_kill_9_of_an_api_process_loses_and_duplicates_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    servers = [LiveServer(postgres_url, workers=1, log_path=tmp_path / f"{n}.log") for n in "ab"]
    victim, survivor = servers
    try:
        bases = [s.url for s in servers]
        group = create_group(
            survivor.url,
            {"hptuning": GRID, "objective": {"name": "loss", "optimization": "minimize"}},
        )
        assert group["planned_trials"] == CELLS
        gid = group["id"]

        # A lost answer, on purpose: a suggestion reaches the victim, whose client hangs
        # up before the answer; it commits (its log says so); the same request with the
        # same key then goes to the other server and gets that very trial.
        request = {"count": 1, "worker_id": "probe"}
        send_and_hang_up(victim, f"/api/v1/groups/{gid}/suggestions", request, "probe-key")
        wait_until(
            lambda: logged(victim.log_path, "trial.suggested", worker_id="probe"),
            timeout=30,
            what="the victim to commit the probe's suggestion",
        )
        retry = httpx.post(
            f"{survivor.url}/api/v1/groups/{gid}/suggestions",
            json=request,
            headers={"Idempotency-Key": "probe-key"},
        )
        assert retry.status_code == 200, retry.text
        (probe_trial,) = retry.json()["trials"]
        assert [t["id"] for t in all_trials(survivor.url, gid)] == [probe_trial["id"]]
        probe = Client(bases, 1, gid, Progress())
        probe.handed.append(probe_trial)
        probe.train(probe_trial)
        probe.api.close()

        progress = Progress()
        clients = [Client(bases, i % 2, gid, progress) for i in range(CLIENTS)]
        killed = threading.Event()

        def kill_a_third_of_the_way_in() -> None:
            wait_until(lambda: progress.value >= CELLS // 3, timeout=120, what="a third done")
            os.kill(victim.process.pid, signal.SIGKILL)  # --workers 1: this pid serves
            killed.set()

        killer = threading.Thread(target=kill_a_third_of_the_way_in)
        killer.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            done = list(pool.map(Client.run, clients))
        killer.join()
        assert victim.process.wait(timeout=10) == -signal.SIGKILL
        assert killed.is_set() and progress.value < CELLS, "the kill came too late to matter"

        clients = [probe, *done]
        trials = all_trials(survivor.url, gid)
        final = get_group(survivor.url, gid)
        stored = stored_metrics(survivor.url, gid)
    finally:
        for server in servers:
            server.stop()

    # The kill hit requests in flight, and their clients failed over.
    assert sum(c.api.lost_answers for c in clients) > 0
    victims_clients = [c for c in clients if c.api.start == 0]
    assert sum(len(c.completed) for c in victims_clients) > CELLS // 6  # and went on

    # Every cell completed exactly once, by the clients and in the database.
    cells = Counter(t["config_index"] for c in clients for t in c.completed)
    assert sorted(cells) == list(range(CELLS)) and set(cells.values()) == {1}
    assert final["status"] == "done"
    assert final["counts"]["succeeded"] == CELLS
    assert len({tuple(sorted(t["params"].items())) for t in trials}) == CELLS

    # No trial lost: each trial of the group was handed to exactly one client and
    # completed; none was orphaned by an answer lost with the killed server.
    handed = Counter(t["id"] for c in clients for t in c.handed)
    assert set(handed.values()) == {1}
    assert set(handed) == {t["id"] for t in trials}
    assert {t["status"] for t in trials} == {"succeeded"}
    assert len(trials) == CELLS

    # Every acknowledged metric value is stored, and nothing else.
    reported = {
        (trial_id, name, step): value
        for c in clients
        for trial_id, step, values in c.reported
        for name, value in values.items()
    }
    assert len(reported) == CELLS * STEPS * 2
    assert stored == reported

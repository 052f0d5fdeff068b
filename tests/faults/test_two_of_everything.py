"""Two API processes, two `hpo worker` processes, one group of each algorithm at once.

Grid, random, Hyperband, ASHA, bo and tpe groups run side by side, each
driven by three clients spread over two separate `hpo serve` processes, while
two `hpo worker` processes precompute suggestions for the bo and tpe groups.
Every space is discrete (18 points) and no budget exceeds it, so a repeated
configuration is a bug, not chance. Nothing is handed out twice: no trial id
to two clients, no configuration twice within a group (for Hyperband: no new
configuration twice, and no trial promoted twice), every trial of a group was
handed to a client (none orphaned), and each group ends `done` with the
planned number of trials, Hyperband rung by rung as planned.
"""

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.faults.support import (
    PrecomputeWorker,
    RetryingClient,
    all_trials,
    create_group,
    get_group,
    logged,
    wait_until,
)

pytestmark = pytest.mark.postgres

CLIENTS_PER_GROUP = 3
SPACE = {
    "x": {"values": [0, 1, 2]},
    "y": {"values": [0.5, 1.5, 2.5]},
    "c": {"values": ["a", "b"]},
}
METRIC = {"name": "loss", "optimization": "minimize"}
HYPERBAND = {"max_iter": 9, "eta": 3, "resource": {"name": "epochs", "type": "int"}}
HYPERBAND |= {"metric": METRIC, "resume": True}

# name: (hptuning, trials the group runs in all, or None when that depends on the run)
GROUPS: dict[str, tuple[dict[str, Any], int | None]] = {
    "grid": ({"grid_search": {}}, 18),
    "random": ({"random_search": {"n_experiments": 12}}, 12),
    "hyperband": ({"hyperband": HYPERBAND}, 22),  # 9+3+1, 5+1, 3: 17 configurations
    "asha": ({"hyperband": HYPERBAND | {"asynchronous": True, "n_experiments": 12}}, None),
    "bo": (
        {"bo": {"n_initial_trials": 3, "n_iterations": 9, "metric": METRIC}},
        12,
    ),
    "tpe": (
        {"tpe": {"n_experiments": 12, "n_initial_trials": 4, "metric": METRIC}},
        12,
    ),
}


def loss(params: dict[str, Any]) -> float:
    value = (params["x"] - 1.2) ** 2 + (params["y"] - 1.5) ** 2 + (params["c"] == "b") * 0.3
    if "epochs" in params:
        value += 1 / (1 + params["epochs"])
    return value


def drive(bases: list[str], start: int, group_id: int, pause: float) -> list[dict[str, Any]]:
    """A worker: ask, train for `pause` s (Hyperband: report the last epoch), complete."""
    api = RetryingClient(bases, start=start)
    got: list[dict[str, Any]] = []
    try:
        while True:
            answer = api.post(
                f"/api/v1/groups/{group_id}/suggestions",
                {"count": 1, "worker_id": f"client-{start}", "wait_seconds": 1},
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if body["group_status"] not in ("created", "running"):
                assert body["group_status"] == "done", body
                return got
            for trial in body["trials"]:
                got.append(trial)
                time.sleep(pause)
                value = loss(trial["params"])
                if trial["resource"] is not None:
                    report = api.post(
                        f"/api/v1/trials/{trial['id']}/metrics",
                        {"values": {"loss": value}, "step": int(trial["resource"])},
                    )
                    assert report.status_code == 200, report.text
                done = api.post(
                    f"/api/v1/trials/{trial['id']}/complete",
                    {"status": "succeeded", "values": {"loss": value}},
                )
                assert done.status_code == 200, done.text
                assert done.json()["status"] == "succeeded", done.text
    finally:
        api.close()


@pytest.fixture
def precompute_workers(postgres_url: str, tmp_path: Path) -> Iterator[list[PrecomputeWorker]]:
    workers = [
        PrecomputeWorker(postgres_url, log_path=tmp_path / f"worker-{i}.log") for i in range(2)
    ]
    for worker in workers:
        worker.wait_started()
    yield workers
    for worker in workers:
        if worker.process.poll() is None:
            worker.stop()


def refilled(workers: list[PrecomputeWorker], group_id: int) -> bool:
    return any(logged(w.log_path, "worker.refilled", group_id=group_id) for w in workers)


def configuration(trial: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in trial["params"].items() if k != "epochs"))


def check_hyperband(name: str, trials: list[dict[str, Any]], final: dict[str, Any]) -> None:
    by_id = {t["id"]: t for t in trials}
    promoted = Counter(t["resume_from"] for t in trials if t["resume_from"] is not None)
    assert promoted and set(promoted.values()) == {1}, f"{name}: promoted twice: {promoted}"
    for t in trials:
        if t["resume_from"] is not None:
            parent = by_id[t["resume_from"]]
            assert (parent["bracket"], parent["rung"] + 1) == (t["bracket"], t["rung"]), name
            assert configuration(parent) == configuration(t), name
            assert parent["status"] == "succeeded", name
    fresh = [t for t in trials if t["rung"] == 0]
    assert len({configuration(t) for t in fresh}) == len(fresh), f"{name}: a configuration twice"
    if name == "hyperband":
        assert len(fresh) == 17
        for rung in final["rungs"]:
            assert rung["counts"]["succeeded"] == rung["planned"], (name, rung)
    else:
        assert len(fresh) == 12


def test_no_suggestion_twice_with_two_apis_and_two_workers(
    server_pair: tuple[LiveServer, LiveServer],
    precompute_workers: list[PrecomputeWorker],
) -> None:
    bases = [s.url for s in server_pair]
    groups = {
        name: create_group(
            bases[i % 2],
            {
                "name": f"faults-{name}",
                "hptuning": {"concurrency": 4, "seed": 7 + i, "matrix": SPACE, **hptuning},
            },
        )
        for i, (name, (hptuning, _)) in enumerate(GROUPS.items())
    }
    # The workers fill the model-based groups' queues before the first client asks.
    for name in ("bo", "tpe"):
        wait_until(
            partial(refilled, precompute_workers, groups[name]["id"]),
            timeout=60,
            what=f"a worker to refill the {name} group's queue",
        )
    # Training takes a moment in the model-based groups, so that the workers race each
    # other and the API to refill between two results. A job: (group, its id, client, pause).
    jobs = [
        (name, group["id"], client, 0.2 if name in ("bo", "tpe") else 0.0)
        for name, group in groups.items()
        for client in range(CLIENTS_PER_GROUP)
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        handed = list(pool.map(lambda job: drive(bases, job[2], job[1], job[3]), jobs))

    for worker in precompute_workers:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
        assert '"worker.round_failed"' not in worker.log_path.read_text()

    ids = Counter(t["id"] for got in handed for t in got)
    assert set(ids.values()) == {1}, "a trial was handed to two clients"
    queued = 0
    for name, group in groups.items():
        trials = all_trials(bases[0], group["id"])
        final = get_group(bases[1], group["id"])
        to_clients = [
            t for job, got in zip(jobs, handed, strict=True) if job[0] == name for t in got
        ]
        assert final["status"] == "done", (name, final["status"])
        assert {t["id"] for t in to_clients} == {t["id"] for t in trials}, f"{name}: orphans"
        assert {t["status"] for t in trials} == {"succeeded"}, name
        planned = GROUPS[name][1]
        if planned is not None:
            assert len(trials) == planned, name
        if name in ("hyperband", "asha"):
            check_hyperband(name, trials, final)
        else:
            configurations = Counter(configuration(t) for t in trials)
            assert set(configurations.values()) == {1}, f"{name}: {configurations}"
        if name in ("bo", "tpe"):
            queued += sum(1 for t in to_clients if (t.get("reason") or {}).get("queued"))
    # The workers were part of it: some model-based suggestions came from their queues.
    assert queued > 0

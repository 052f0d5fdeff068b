"""Hyperband and ASHA groups driven over HTTP by concurrent simulated workers."""

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


def loss_curve(params: dict[str, Any], epochs: float) -> float:
    """A synthetic learning curve: the final loss depends on the params, and falls with epochs."""
    floor = (math.log10(params["lr"]) + 2.5) ** 2 / 4 + 0.1 * params["depth"]
    return floor + 1.0 / (1 + epochs)


def hyperband_spec(max_iter: int, eta: int, **extra: Any) -> dict[str, Any]:
    return {
        "concurrency": extra.pop("concurrency", 10),
        "seed": 3,
        "hyperband": {
            "max_iter": max_iter,
            "eta": eta,
            "resource": {"name": "epochs", "type": "int"},
            "metric": {"name": "loss", "optimization": "minimize"},
            "resume": True,
            **extra,
        },
        "matrix": {"lr": {"loguniform": [-9, -1]}, "depth": {"values": [1, 2, 3, 4]}},
    }


class Worker:
    """A training worker: ask, train for `epochs` (report a few steps), complete."""

    def __init__(self, base: str, group_id: int, *, die_on: int | None = None) -> None:
        self.base, self.group_id, self.die_on = base, group_id, die_on
        self.trials: list[dict[str, Any]] = []
        self.empty_at: list[float] = []  # when the service had nothing for this worker

    def run(self, stop: threading.Event | None = None) -> "Worker":
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while stop is None or not stop.is_set():
                answer = http.post(
                    f"/api/v1/groups/{self.group_id}/suggestions",
                    json={"count": 1, "wait_seconds": 0.5},
                ).json()
                if answer["group_status"] != "running" and answer["group_status"] != "created":
                    return self
                if not answer["trials"]:
                    self.empty_at.append(time.time())
                    continue
                (trial,) = answer["trials"]
                self.trials.append(trial)
                if self.die_on is not None and len(self.trials) == self.die_on:
                    return self  # crashes: never reports, its lease will expire
                epochs = trial["resource"]
                assert trial["params"]["epochs"] == epochs
                for step in (1, epochs):
                    http.post(
                        f"/api/v1/trials/{trial['id']}/metrics",
                        json={"values": {"loss": loss_curve(trial["params"], step)}, "step": step},
                    )
                done = http.post(
                    f"/api/v1/trials/{trial['id']}/complete", json={"status": "succeeded"}
                )
                assert done.status_code == 200, done.text
        return self


def create(server: LiveServer, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/v1/groups", json={"hptuning": spec, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def view(server: LiveServer, group_id: int) -> dict[str, Any]:
    return httpx.get(f"{server.url}/api/v1/groups/{group_id}").json()


def all_trials(server: LiveServer, group_id: int) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{server.url}/api/v1/groups/{group_id}/trials", params=params).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def assert_rungs_match_the_plan(group: dict[str, Any]) -> None:
    for rung in group["rungs"]:
        assert rung["counts"]["succeeded"] == rung["planned"], rung
        assert rung["counts"]["running"] == rung["counts"]["pending"] == 0


def test_hyperband_81_3_with_10_workers(pg_server: LiveServer) -> None:
    group = create(pg_server, hyperband_spec(81, 3))
    assert group["planned_trials"] == 206
    with ThreadPoolExecutor(10) as pool:
        workers = list(pool.map(lambda _: Worker(pg_server.url, group["id"]).run(), range(10)))
    final = view(pg_server, group["id"])
    assert final["status"] == "done"
    assert final["counts"]["succeeded"] == 206
    assert_rungs_match_the_plan(final)
    assert [(r["bracket"], r["rung"], r["planned"]) for r in final["rungs"]][:5] == [
        (4, 0, 81),
        (4, 1, 27),
        (4, 2, 9),
        (4, 3, 3),
        (4, 4, 1),
    ]
    trials = all_trials(pg_server, group["id"])
    promoted = [t["resume_from"] for t in trials if t["resume_from"] is not None]
    assert len(promoted) == len(set(promoted)) == 206 - 143  # nobody promoted twice
    by_id = {t["id"]: t for t in trials}
    for t in trials:
        if t["resume_from"] is not None:
            parent = by_id[t["resume_from"]]
            assert t["resume"] is True
            assert (parent["bracket"], parent["rung"] + 1) == (t["bracket"], t["rung"])
            assert {k: v for k, v in parent["params"].items() if k != "epochs"} == {
                k: v for k, v in t["params"].items() if k != "epochs"
            }
            # Promotions go to the best of their rung.
            rung = [
                p
                for p in trials
                if (p["bracket"], p["rung"]) == (parent["bracket"], parent["rung"])
            ]
            better = [p for p in rung if p["objective"] < parent["objective"]]
            kept = sum(1 for c in trials if c["resume_from"] in {p["id"] for p in rung})
            assert len(better) < kept
    assert sum(len(w.trials) for w in workers) == 206
    assert final["best_trial"]["objective"] == min(t["objective"] for t in trials)


def test_hyperband_survives_a_worker_killed_mid_rung(pg_server: LiveServer) -> None:
    group = create(pg_server, hyperband_spec(9, 3, concurrency=4), lease_seconds=1)
    dead = Worker(pg_server.url, group["id"], die_on=2).run()
    lost = dead.trials[-1]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: Worker(pg_server.url, group["id"]).run(), range(3)))
    final = view(pg_server, group["id"])
    assert final["status"] == "done"
    assert final["counts"]["succeeded"] == 22 and final["counts"]["expired"] == 1
    assert_rungs_match_the_plan(final)
    trials = all_trials(pg_server, group["id"])
    (again,) = [t for t in trials if t["replaces_id"] == lost["id"]]
    assert (again["bracket"], again["rung"], again["params"]) == (
        lost["bracket"],
        lost["rung"],
        lost["params"],
    )


def test_asha_keeps_every_worker_busy(pg_server: LiveServer) -> None:
    spec = hyperband_spec(27, 3, concurrency=4, asynchronous=True, n_experiments=40)
    group = create(pg_server, spec)
    assert group["planned_trials"] is None
    with ThreadPoolExecutor(4) as pool:
        workers = list(pool.map(lambda _: Worker(pg_server.url, group["id"]).run(), range(4)))
    final = view(pg_server, group["id"])
    assert final["status"] == "done"
    trials = all_trials(pg_server, group["id"])
    rung0 = [t for t in trials if t["rung"] == 0]
    assert len(rung0) == 40
    # Promotions happened while rung 0 was still filling: nobody waited for a full rung.
    first_promotion = min(t["id"] for t in trials if t["rung"] == 1)
    assert first_promotion < max(t["id"] for t in rung0)
    ups = Counter(t["rung"] for t in trials)
    # Early promotions may be overtaken later, so a rung can end with a few more.
    assert ups[1] >= 40 // 3 and ups[3] >= 1
    # While new configurations remained, no worker was sent away empty-handed.
    budget_spent = max(datetime.fromisoformat(t["created_at"]).timestamp() for t in rung0)
    idle = [at for w in workers for at in w.empty_at if at < budget_spent]
    assert idle == []


def test_objective_must_agree_with_the_hyperband_metric(pg_server: LiveServer) -> None:
    response = httpx.post(
        f"{pg_server.url}/api/v1/groups",
        json={"hptuning": hyperband_spec(9, 3), "objective": {"name": "acc"}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "objective"


@pytest.mark.parametrize("asynchronous", [False, True])
def test_rung_view_after_a_few_trials(pg_server: LiveServer, asynchronous: bool) -> None:
    spec = hyperband_spec(9, 3, concurrency=3, asynchronous=asynchronous)
    group = create(pg_server, spec)
    answer = httpx.post(
        f"{pg_server.url}/api/v1/groups/{group['id']}/suggestions", json={"count": 3}
    ).json()
    assert [t["rung"] for t in answer["trials"]] == [0, 0, 0]
    assert all(t["resource"] == 1 and t["resume_from"] is None for t in answer["trials"])
    rungs = view(pg_server, group["id"])["rungs"]
    assert rungs[0]["counts"]["running"] == 3 and rungs[0]["resource"] == 1

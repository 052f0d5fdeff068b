"""Bayesian optimization and TPE over HTTP: four workers on Branin, and the precompute worker."""

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer, _libpq
from tests.integration.helpers import complete, create_group, suggest

BRANIN_MIN = 0.397887
BRANIN_SPACE = {"x1": {"uniform": [-5, 10]}, "x2": {"uniform": [0, 15]}}


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def worker(
    base: str, group_id: int, pause: float = 0.0, after: float = 0.0
) -> list[dict[str, Any]]:
    """Ask, train for `pause` seconds, report; then wind down for `after` seconds."""
    seen = []
    with httpx.Client(base_url=base, timeout=60) as http:
        while True:
            answer = http.post(
                f"/api/v1/groups/{group_id}/suggestions", json={"count": 1, "wait_seconds": 2}
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if body["group_status"] not in ("created", "running"):
                return seen
            for trial in body["trials"]:
                seen.append(trial)
                time.sleep(pause)  # training
                value = branin(**trial["params"])
                done = http.post(
                    f"/api/v1/trials/{trial['id']}/complete",
                    json={"status": "succeeded", "values": {"loss": value}},
                )
                assert done.status_code == 200, done.text
                time.sleep(after)  # saving checkpoints, writing logs: the worker refills meanwhile


def create(server: LiveServer, spec: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/v1/groups", json={"hptuning": spec}, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def run_group(server: LiveServer, spec: dict[str, Any], workers: int = 4) -> tuple[dict, list]:
    group = create(server, spec)
    with ThreadPoolExecutor(workers) as pool:
        seen = [
            t
            for got in pool.map(lambda _: worker(server.url, group["id"]), range(workers))
            for t in got
        ]
    return httpx.get(f"{server.url}/api/v1/groups/{group['id']}").json(), seen


def test_bo_on_branin_with_four_workers(pg_server: LiveServer) -> None:
    spec = {
        "concurrency": 4,
        "seed": 1,
        "matrix": BRANIN_SPACE,
        "bo": {
            "n_initial_trials": 8,
            "n_iterations": 22,
            "metric": {"name": "loss", "optimization": "minimize"},
            "utility_function": {"acquisition_function": "ei", "eps": 0.0},
        },
    }
    group, seen = run_group(pg_server, spec)
    assert group["status"] == "done" and group["counts"]["succeeded"] == 30
    assert group["best_trial"]["objective"] - BRANIN_MIN < 1.0
    phases = [t["reason"]["phase"] for t in sorted(seen, key=lambda t: t["config_index"])]
    assert phases[:8] == ["initial"] * 8 and set(phases[8:]) == {"model"}
    model = [t["reason"] for t in seen if t["reason"]["phase"] == "model"]
    assert all(r["predicted_mean"] is not None and r["predicted_std"] is not None for r in model)
    assert any(r["n_pending"] > 0 for r in model)  # four workers: running trials were pending
    assert len({(t["params"]["x1"], t["params"]["x2"]) for t in seen}) == 30


def test_bo_without_utility_function_shows_its_defaults(pg_server: LiveServer) -> None:
    spec = {
        "matrix": BRANIN_SPACE,
        "bo": {"n_initial_trials": 2, "n_iterations": 1, "metric": {"name": "loss"}},
    }
    utility = create(pg_server, spec)["hptuning"]["bo"]["utility_function"]
    assert utility["acquisition_function"] == "ucb" and utility["kappa"] == 2.576
    assert utility["gaussian_process"]["kernel"] == "matern"
    assert utility["gaussian_process"]["nu"] == 2.5


def test_bo_utility_function_without_gaussian_process_gets_the_default_kernel(
    pg_server: LiveServer,
) -> None:
    utility = {"acquisition_function": "ei", "eps": 0.0}
    spec = {
        "matrix": BRANIN_SPACE,
        "bo": {"n_initial_trials": 2, "n_iterations": 1, "metric": {"name": "loss"}},
    }
    spec["bo"]["utility_function"] = utility
    shown = create(pg_server, spec)["hptuning"]["bo"]["utility_function"]
    assert shown["acquisition_function"] == "ei" and shown["eps"] == 0.0
    assert shown["gaussian_process"] == {
        "kernel": "matern",
        "length_scale": 1.0,
        "nu": 2.5,
        "n_restarts_optimizer": 0,
    }
    # A gaussian_process that names no nu keeps Polyaxon's 1.5.
    spec["bo"]["utility_function"] = {**utility, "gaussian_process": {"kernel": "matern"}}
    shown = create(pg_server, spec)["hptuning"]["bo"]["utility_function"]
    assert shown["gaussian_process"]["nu"] == 1.5


def test_tpe_on_branin_with_four_workers(pg_server: LiveServer) -> None:
    spec = {
        "concurrency": 4,
        "seed": 2,
        "matrix": BRANIN_SPACE,
        "tpe": {
            "n_experiments": 40,
            "n_initial_trials": 10,
            "metric": {"name": "loss", "optimization": "minimize"},
        },
    }
    group, seen = run_group(pg_server, spec)
    assert group["status"] == "done" and group["counts"]["succeeded"] == 40
    assert group["best_trial"]["objective"] - BRANIN_MIN < 3.0
    assert {t["reason"]["phase"] for t in seen} == {"initial", "model"}


def test_discrete_bo_space_never_repeats(pg_server: LiveServer) -> None:
    spec = {
        "concurrency": 3,
        "seed": 5,
        "matrix": {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}},
        "bo": {"n_initial_trials": 2, "n_iterations": 20, "metric": {"name": "loss"}},
    }
    group = create(pg_server, spec)
    assert group["planned_trials"] == 6  # capped at the space's size
    with ThreadPoolExecutor(3) as pool:
        seen = [
            t
            for got in pool.map(lambda _: worker_discrete(pg_server.url, group["id"]), range(3))
            for t in got
        ]
    assert sorted((t["params"]["a"], t["params"]["b"]) for t in seen) == sorted(
        (a, b) for a in (1, 2, 3) for b in ("x", "y")
    )


def worker_discrete(base: str, group_id: int) -> list[dict[str, Any]]:
    seen = []
    with httpx.Client(base_url=base, timeout=60) as http:
        while True:
            body = http.post(
                f"/api/v1/groups/{group_id}/suggestions", json={"count": 1, "wait_seconds": 1}
            ).json()
            if body["group_status"] not in ("created", "running"):
                return seen
            for trial in body["trials"]:
                seen.append(trial)
                value = trial["params"]["a"] + (trial["params"]["b"] == "y")
                http.post(
                    f"/api/v1/trials/{trial['id']}/complete",
                    json={"status": "succeeded", "values": {"loss": value}},
                )


def test_group_fails_when_no_trial_reports_the_metric(pg_server: LiveServer) -> None:
    spec = {
        "concurrency": 2,
        "matrix": BRANIN_SPACE,
        "tpe": {"n_experiments": 10, "n_initial_trials": 2, "metric": {"name": "loss"}},
    }
    group = create(pg_server, spec)
    url = f"{pg_server.url}/api/v1/groups/{group['id']}/suggestions"
    for trial in httpx.post(url, json={"count": 2}).json()["trials"]:
        httpx.post(
            f"{pg_server.url}/api/v1/trials/{trial['id']}/complete",
            json={"status": "succeeded", "values": {"accuracy": 0.5}},
        )
    answer = httpx.post(url, json={"count": 1}).json()
    assert answer["group_status"] == "failed" and answer["trials"] == []
    view = httpx.get(f"{pg_server.url}/api/v1/groups/{group['id']}").json()
    assert "`loss`" in view["status_reason"]


def test_list_valued_draws_are_refused_for_models(pg_server: LiveServer) -> None:
    spec = {
        "matrix": {"x": {"uniform": {"low": 0, "high": 1, "size": 3}}},
        "bo": {"n_initial_trials": 2, "n_iterations": 1, "metric": {"name": "loss"}},
    }
    response = httpx.post(f"{pg_server.url}/api/v1/groups", json={"hptuning": spec})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "hptuning.matrix"


@pytest.fixture
def precompute_worker(postgres_url: str, tmp_path: Path) -> Iterator[None]:
    env = {**os.environ, "HPO_DATABASE_URL": postgres_url, "HPO_LOG_FORMAT": "json"}
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--poll", "0.05"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield
    process.terminate()
    assert process.wait(timeout=15) == 0, (tmp_path / "worker.log").read_text()
    log.close()


def fresh_queue_entries(postgres_url: str, group_id: int) -> int:
    """Queued suggestions computed from the group's current results."""
    with psycopg.connect(_libpq(postgres_url)) as conn:
        return conn.execute(
            "SELECT count(*) FROM suggestion_queue q WHERE q.group_id = %(g)s AND q.basis = "
            "(SELECT count(*) FROM trials t WHERE t.group_id = %(g)s "
            "AND t.status IN ('succeeded', 'failed', 'stopped'))",
            {"g": group_id},
        ).fetchone()[0]


def test_worker_serves_suggestions_from_the_queue(
    pg_server: LiveServer, precompute_worker: None, postgres_url: str
) -> None:
    spec = {
        "concurrency": 1,
        "seed": 4,
        "matrix": BRANIN_SPACE,
        "bo": {
            "n_initial_trials": 3,
            "n_iterations": 5,
            "metric": {"name": "loss", "optimization": "minimize"},
        },
    }
    group = create(pg_server, spec)
    seen = []
    with httpx.Client(base_url=pg_server.url, timeout=60) as http:
        for _ in range(8):
            # Give the worker the time a real client spends between trials.
            deadline = time.monotonic() + 60
            while fresh_queue_entries(postgres_url, group["id"]) == 0:
                assert time.monotonic() < deadline, "the worker never refilled the queue"
                time.sleep(0.05)
            started = time.perf_counter()
            answer = http.post(
                f"/api/v1/groups/{group['id']}/suggestions", json={"count": 1}
            ).json()
            took = time.perf_counter() - started
            (trial,) = answer["trials"]
            seen.append((trial, took))
            http.post(
                f"/api/v1/trials/{trial['id']}/complete",
                json={"status": "succeeded", "values": {"loss": branin(**trial["params"])}},
            )
    assert all(t["reason"].get("queued") for t, _ in seen), [t["reason"] for t, _ in seen]
    assert [t["reason"]["phase"] for t, _ in seen] == ["initial"] * 3 + ["model"] * 5
    final = httpx.get(f"{pg_server.url}/api/v1/groups/{group['id']}").json()
    assert final["status"] == "done" and final["counts"]["succeeded"] == 8


def test_the_model_sees_trials_in_the_order_they_were_proposed(client: TestClient) -> None:
    """Whatever order results arrive (and rows are rewritten) in, the model's inputs keep
    the order of the draws, so the same seed and results give the same suggestions."""
    from app.services.modelsearch import model_inputs

    spec = {
        "concurrency": 6,
        "seed": 3,
        "matrix": BRANIN_SPACE,
        "bo": {"n_initial_trials": 6, "n_iterations": 2, "metric": {"name": "loss"}},
    }
    response = client.post("/api/v1/groups", json={"hptuning": spec})
    assert response.status_code == 201, response.text
    group_id = response.json()["id"]
    answer = client.post(f"/api/v1/groups/{group_id}/suggestions", json={"count": 6}).json()
    proposed = answer["trials"]
    assert len(proposed) == 6
    for t in reversed(proposed):  # the last proposed finishes first
        done = client.post(
            f"/api/v1/trials/{t['id']}/complete",
            json={"status": "succeeded", "values": {"loss": t["params"]["x1"]}},
        )
        assert done.status_code == 200, done.text
    with client.app.state.db.read() as conn:
        if conn.dialect.name == "postgresql":
            # As the planner does once the table is large: rows in the heap's order,
            # where a rewritten row lands after the others.
            conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        observations, pending, _ = model_inputs(conn, group_id)
    assert pending == []
    assert [o.params for o in observations] == [t["params"] for t in proposed]


def test_a_trial_shows_the_reason_for_its_choice_as_the_model_wrote_it(
    client: TestClient,
) -> None:
    spec = {
        "concurrency": 1,
        "seed": 5,
        "matrix": BRANIN_SPACE,
        "tpe": {"n_experiments": 4, "n_initial_trials": 2, "metric": {"name": "loss"}},
    }
    group_id = create_group(client, spec)["id"]
    for _ in range(3):
        (trial,) = suggest(client, group_id)["trials"]
        complete(client, trial["id"], {"loss": branin(**trial["params"])})
    assert trial["reason"]["phase"] == "model"
    # jsonb would sort the keys (gamma_split, log_ratio, ... before phase).
    keys = ["phase", "log_ratio", "n_observations", "n_pending", "pending_strategy"]
    assert list(trial["reason"])[:5] == keys
    shown = client.get(f"/api/v1/trials/{trial['id']}").json()
    assert list(shown["reason"]) == list(trial["reason"])

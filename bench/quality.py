"""Search quality of hpo-engine's bo, tpe and random search against Optuna, in one run.

What it measures
----------------
Three test functions, all minimised:

* Branin on [-5, 10] x [0, 15] (optimum 0.397887);
* Hartmann6 on [0, 1]^6 (optimum -3.32237);
* "mixed": Hartmann6 whose x5 and x6 may only take the five values 0, 0.25, 0.5, 0.75, 1 and
  whose x1 is first passed through a categorical `c`: a -> x1, b -> 1 - x1,
  c -> (x1 + 0.5) mod 1. Each branch of `c` is a bijection of x1, so every branch has the same
  optimum; that optimum (over the 25 grid cells of x5, x6 and x1..x4 continuous) is computed at
  start-up by a dense Sobol scan of x1..x4 per cell, polished with L-BFGS-B, and printed.

Systems: hpo-engine's `bo`, `tpe` and `random_search`, each driven over HTTP through a real
`hpo serve` (two server processes) plus one `hpo worker` (the suggestion queue), on a fresh
PostgreSQL database; and Optuna's GPSampler, TPESampler (its defaults, and once more with
`multivariate=False`) and RandomSampler on in-memory storage, ask/tell from client threads.
Each run is one 100-trial search (by default) with 1 or 4 concurrent clients; the budgets 30, 60
and 100 are prefixes of that run: the best value among the first 30, 60 and 100 trials to
*complete*. Regret = best found - known optimum. Reported: median and interquartile range of the
regret over seeds, the wall time of a suggestion as the client sees it (1-client runs; for the
service that is the whole HTTP request), and separately the latency of a suggestion request
of a `bo` group holding 200 finished trials, computed on demand (no worker running) and served
from the queue (worker running).

Time: a GP-based suggestion costs 0.1-1 s on a busy 2-core machine, so the whole design
(10 seeds x 3 functions x {1, 4} clients x 7 systems x 100 trials) takes over an hour there.
By default the run is cut to fit about 25 minutes, and the report says what was cut: bo and
GPSampler run 100 trials for seed 0 only and 60 for the other seeds (--full-seeds,
--short-trials; the targets are at 60); the 1-client runs of seed 0 run one at a time (the
wall times per suggestion come from them), the others three at a time (--parallel); the
1-client runs of every seed come first, then the 4-client runs function by function, and no
run starts after --budget-minutes (less the latency part's share).

How to run (from the repository root, PostgreSQL on 127.0.0.1:5432 as `postgres`):

    .venv/bin/python bench/quality.py [--seeds 10] [--out bench/results/quality.md]

Subsets for quick checks: `--functions branin --systems bo --workers 1 --seeds 3 --no-latency`.
The database it creates (bench_quality_<pid>) is dropped at the end, also on failure; the
server and worker it starts are stopped. Everything listens on and connects to 127.0.0.1.
"""

import argparse
import datetime as dt
import itertools
import json
import math
import multiprocessing
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
METRIC = {"name": "y", "optimization": "minimize"}
SERVICE_SYSTEMS = ("bo", "bo_ei", "tpe", "random")
OPTUNA_SYSTEMS = ("optuna_gp", "optuna_tpe", "optuna_tpe_indep", "optuna_random")
ALL_SYSTEMS = SERVICE_SYSTEMS + OPTUNA_SYSTEMS
SYSTEM_LABEL = {
    "bo": "hpo bo (ucb, the default)",
    "bo_ei": "hpo bo (ei, matern 2.5)",
    "tpe": "hpo tpe",
    "random": "hpo random",
    "optuna_gp": "Optuna GPSampler",
    "optuna_tpe": "Optuna TPESampler (defaults)",
    "optuna_tpe_indep": "Optuna TPESampler (multivariate=False)",
    "optuna_random": "Optuna RandomSampler",
}
N_INITIAL = 10  # bo's and our tpe's initial design; Optuna's GP and TPE start with 10 too
RUN_TIMEOUT_S = 900.0  # one search that takes longer than this is abandoned
HTTP_TIMEOUT_S = 60.0

# --------------------------------------------------------------------------- test functions

BRANIN_OPTIMUM = 0.397887
HARTMANN6_OPTIMUM = -3.32237
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
MIXED_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
MIXED_CATEGORIES = ("a", "b", "c")


def branin(x1: float, x2: float) -> float:
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


def hartmann6_many(x: np.ndarray) -> np.ndarray:
    """Hartmann6 of each row of an (n, 6) array."""
    diff = x[:, None, :] - _H6_P[None, :, :]
    return -(np.exp(-(diff * diff * _H6_A).sum(axis=2)) @ _H6_ALPHA)


def hartmann6(x: Sequence[float]) -> float:
    return float(hartmann6_many(np.asarray(x, dtype=float)[None, :])[0])


def shift_x1(category: str, x1: float) -> float:
    """The categorical's effect on the mixed function: which view of x1 Hartmann6 gets."""
    if category == "a":
        return x1
    if category == "b":
        return 1.0 - x1
    if category == "c":
        return (x1 + 0.5) % 1.0
    raise ValueError(f"unknown category {category!r}")


@dataclass(frozen=True)
class Param:
    """One search dimension, written once for both the service's matrix and Optuna."""

    name: str
    low: float = 0.0
    high: float = 1.0
    grid: tuple[float, ...] | None = None  # evenly spaced numbers: ordinal
    choices: tuple[str, ...] | None = None  # categories

    def matrix_option(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"values": list(self.choices)}
        if self.grid is not None:
            return {"values": list(self.grid)}
        return {"uniform": [self.low, self.high]}


def _evaluate_branin(p: Mapping[str, Any]) -> float:
    return branin(float(p["x1"]), float(p["x2"]))


def _evaluate_hartmann6(p: Mapping[str, Any]) -> float:
    return hartmann6([float(p[f"x{i}"]) for i in range(1, 7)])


def _evaluate_mixed(p: Mapping[str, Any]) -> float:
    x = [float(p[f"x{i}"]) for i in range(1, 7)]
    x[0] = shift_x1(str(p["c"]), x[0])
    return hartmann6(x)


@dataclass(frozen=True)
class Problem:
    name: str
    params: tuple[Param, ...]
    evaluate: Callable[[Mapping[str, Any]], float]

    def matrix(self) -> dict[str, Any]:
        return {p.name: p.matrix_option() for p in self.params}


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(
        "branin", (Param("x1", -5.0, 10.0), Param("x2", 0.0, 15.0)), _evaluate_branin
    ),
    "hartmann6": Problem(
        "hartmann6", tuple(Param(f"x{i}") for i in range(1, 7)), _evaluate_hartmann6
    ),
    "mixed": Problem(
        "mixed",
        (
            *(Param(f"x{i}") for i in range(1, 5)),
            Param("x5", grid=MIXED_GRID),
            Param("x6", grid=MIXED_GRID),
            Param("c", choices=MIXED_CATEGORIES),
        ),
        _evaluate_mixed,
    ),
}


def mixed_optimum() -> tuple[float, dict[str, float]]:
    """The mixed function's minimum: per (x5, x6) cell, a Sobol scan of x1..x4, then L-BFGS-B.

    With category `a` (x1 as is); the other categories reach the same value at a moved x1.
    """
    from scipy.optimize import minimize
    from scipy.stats import qmc

    scan = qmc.Sobol(d=4, scramble=True, seed=12345).random(4096)
    best_value, best_x = math.inf, np.zeros(6)
    for x5, x6 in itertools.product(MIXED_GRID, MIXED_GRID):
        tail = np.array([x5, x6])

        def value_and_gradient(z: np.ndarray, tail: np.ndarray = tail) -> tuple[float, np.ndarray]:
            diff = np.concatenate([z, tail]) - _H6_P
            terms = _H6_ALPHA * np.exp(-(_H6_A * diff * diff).sum(axis=1))
            gradient = (terms[:, None] * 2.0 * _H6_A * diff).sum(axis=0)[:4]
            return -float(terms.sum()), gradient

        full = np.hstack([scan, np.tile(tail, (len(scan), 1))])
        values = hartmann6_many(full)
        starts = [scan[i] for i in np.argsort(values)[:6]] + [_H6_P[k, :4] for k in range(4)]
        for start in starts:
            result = minimize(
                value_and_gradient, start, jac=True, bounds=[(0.0, 1.0)] * 4, method="L-BFGS-B"
            )
            if result.fun < best_value:
                best_value, best_x = float(result.fun), np.concatenate([result.x, tail])
    return best_value, {f"x{i + 1}": round(float(v), 5) for i, v in enumerate(best_x)}


# --------------------------------------------------------------------------- one search


@dataclass
class RunResult:
    system: str
    problem: str
    workers: int
    seed: int
    values: list[float] = field(default_factory=list)  # objective values, in completion order
    suggest_s: list[float] = field(default_factory=list)  # per suggestion handed out
    queued: int = 0  # service: suggestions served from the precomputed queue
    wall_s: float = 0.0
    error: str | None = None
    trials: int = 0
    alone: bool = False

    def best_after(self, budget: int) -> float:
        if len(self.values) < budget:
            return math.nan
        return min(self.values[:budget])


EXPENSIVE = ("bo", "bo_ei", "optuna_gp")  # the GP-based systems: ~0.2-0.8 s per suggestion here


@dataclass(frozen=True)
class Job:
    system: str
    problem: str
    workers: int
    seed: int
    trials: int
    alone: bool  # run with nothing else of this benchmark beside it (its timings count)


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """Every run, in the order they start.

    First the timing runs (1 client, seeds below --timing-seeds), one at a time; then the
    other 1-client runs, seed by seed; then the runs with more clients, function by function
    and seed by seed within a function. So when --budget-minutes cuts the run short, what is
    left out is the last functions' multi-client cells, and the cells that were run have all
    their seeds. The GP-based systems run --trials only for seeds below --full-seeds and
    --short-trials otherwise; the others always run --trials.
    """

    def trials(system: str, seed: int) -> int:
        if system in EXPENSIVE and seed >= args.full_seeds:
            return args.short_trials
        return args.trials

    order = sorted(args.systems, key=lambda name: (name not in EXPENSIVE, ALL_SYSTEMS.index(name)))
    timed = [
        Job(system, problem, 1, seed, trials(system, seed), True)
        for seed in range(min(args.timing_seeds, args.seeds))
        for problem in args.functions
        for system in order
        if 1 in args.workers
    ]
    single = [
        Job(system, problem, 1, seed, trials(system, seed), False)
        for seed in range(args.timing_seeds, args.seeds)
        for problem in args.functions
        for system in order
        if 1 in args.workers
    ]
    multi = [
        Job(system, problem, w, seed, trials(system, seed), False)
        for w in args.workers
        if w != 1
        for problem in args.functions
        for seed in range(args.seeds)
        for system in order
    ]
    return timed + single + multi


def service_spec(
    system: str, problem: Problem, workers: int, seed: int, trials: int, acquisition: str
) -> dict[str, Any]:
    hptuning: dict[str, Any] = {"concurrency": workers, "seed": seed, "matrix": problem.matrix()}
    body: dict[str, Any] = {"hptuning": hptuning}
    if system in ("bo", "bo_ei"):
        if system == "bo_ei":
            acquisition = "ei"
        bo: dict[str, Any] = {
            "n_initial_trials": N_INITIAL,
            "n_iterations": trials - N_INITIAL,
            "metric": METRIC,
        }
        if acquisition == "ei":
            # EI on a Matern 5/2 kernel, as GPSampler has: the fair pairing (spelt
            # out, though a utility_function without gaussian_process now gets it too).
            bo["utility_function"] = {
                "acquisition_function": "ei",
                "eps": 0.0,
                "gaussian_process": {"kernel": "matern", "nu": 2.5},
            }
        # "ucb": no utility_function, i.e. the service's default UCB with kappa 2.576
        hptuning["bo"] = bo
    elif system == "tpe":
        hptuning["tpe"] = {"n_experiments": trials, "n_initial_trials": N_INITIAL, "metric": METRIC}
    elif system == "random":
        hptuning["random_search"] = {"n_experiments": trials}
        body["objective"] = METRIC
    else:
        raise ValueError(system)
    return body


def create_group(base_url: str, body: dict[str, Any]) -> int:
    import httpx

    response = httpx.post(f"{base_url}/api/v1/groups", json=body, timeout=HTTP_TIMEOUT_S)
    if response.status_code != 201:
        raise RuntimeError(f"group creation: {response.status_code} {response.text[:500]}")
    return int(response.json()["id"])


def run_service(
    base_url: str,
    system: str,
    problem_name: str,
    workers: int,
    seed: int,
    trials: int,
    acquisition: str,
) -> RunResult:
    """One search through the service: `workers` client threads ask, evaluate, complete."""
    import httpx

    problem = PROBLEMS[problem_name]
    result = RunResult(system, problem_name, workers, seed)
    started = time.perf_counter()
    try:
        group_id = create_group(
            base_url, service_spec(system, problem, workers, seed, trials, acquisition)
        )
    except Exception as exc:  # recorded, the benchmark goes on
        result.error = repr(exc)
        return result
    deadline = time.monotonic() + RUN_TIMEOUT_S
    lock = threading.Lock()
    errors: list[str] = []

    def client(k: int) -> None:
        with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S) as http:
            while time.monotonic() < deadline and not errors:
                t0 = time.perf_counter()
                response = http.post(
                    f"/api/v1/groups/{group_id}/suggestions",
                    json={"count": 1, "worker_id": f"w{k}", "wait_seconds": 10},
                )
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    errors.append(f"suggest: {response.status_code} {response.text[:300]}")
                    return
                answer = response.json()
                if not answer["trials"]:
                    if answer["group_status"] in ("done", "stopped", "failed"):
                        return
                    continue  # the group is full or finishing: ask again (a long poll)
                trial = answer["trials"][0]
                value = problem.evaluate(trial["params"])
                done = http.post(
                    f"/api/v1/trials/{trial['id']}/complete",
                    json={"status": "succeeded", "values": {"y": value}},
                )
                if done.status_code != 200:
                    errors.append(f"complete: {done.status_code} {done.text[:300]}")
                    return
                with lock:
                    result.values.append(value)
                    result.suggest_s.append(elapsed)
                    result.queued += bool((trial.get("reason") or {}).get("queued"))
            if time.monotonic() >= deadline:
                errors.append(f"timed out after {RUN_TIMEOUT_S:.0f} s")

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_TIMEOUT_S + 2 * HTTP_TIMEOUT_S)
    result.wall_s = time.perf_counter() - started
    if errors:
        result.error = errors[0]
    elif len(result.values) < trials:
        result.error = f"only {len(result.values)} of {trials} trials completed"
    return result


def _optuna_worker_init() -> None:
    """Pool process set-up: one torch thread, quiet Optuna, and GPSampler's first-call cost paid."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=12)


def _optuna_params(trial: Any, problem: Problem) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in problem.params:
        if p.choices is not None:
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.grid is not None:
            step = p.grid[1] - p.grid[0]
            params[p.name] = trial.suggest_float(p.name, p.grid[0], p.grid[-1], step=step)
        else:
            params[p.name] = trial.suggest_float(p.name, p.low, p.high)
    return params


def run_optuna(system: str, problem_name: str, workers: int, seed: int, trials: int) -> RunResult:
    """One Optuna study, in memory: `workers` threads ask, evaluate and tell."""
    import optuna

    problem = PROBLEMS[problem_name]
    result = RunResult(system, problem_name, workers, seed)
    samplers: dict[str, Callable[[], Any]] = {
        "optuna_gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "optuna_tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna_tpe_indep": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=False),
        "optuna_random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    study = optuna.create_study(direction="minimize", sampler=samplers[system]())
    lock = threading.Lock()
    handed = [0]
    errors: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    started = time.perf_counter()

    def client() -> None:
        try:
            while time.monotonic() < deadline:
                with lock:
                    if handed[0] >= trials:
                        return
                    handed[0] += 1
                t0 = time.perf_counter()
                trial = study.ask()
                params = _optuna_params(trial, problem)
                elapsed = time.perf_counter() - t0
                value = problem.evaluate(params)
                study.tell(trial, value)
                with lock:
                    result.values.append(value)
                    result.suggest_s.append(elapsed)
            errors.append(f"timed out after {RUN_TIMEOUT_S:.0f} s")
        except Exception as exc:  # recorded, the benchmark goes on
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_TIMEOUT_S + 60)
    result.wall_s = time.perf_counter() - started
    if errors:
        result.error = errors[0]
    return result


# --------------------------------------------------------------------------- infrastructure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    import psycopg

    with psycopg.connect(PG_CONNINFO, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(db=name)
    finally:
        with psycopg.connect(PG_CONNINFO, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """A child process in a session of its own, stopped with its children by process group."""

    def __init__(self, args: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def wait_ready(base_url: str, server: Process, timeout_s: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(f"the server exited with {server.popen.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s")


# --------------------------------------------------------------------------- latency


def _percentile_ms(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q)) if samples else math.nan


@dataclass
class Latency:
    on_demand_s: list[float] = field(default_factory=list)
    on_demand_queued: int = 0  # should be 0: no worker was running
    queue_s: list[float] = field(default_factory=list)  # requests answered from the queue
    queue_missed_s: list[float] = field(default_factory=list)  # computed on demand after all
    n_observations: int = 0
    queue_warmup: int = 0  # rounds before the worker's first refill, not counted
    not_model: int = 0  # suggestions of the initial design: not counted


def latency_group(base_url: str, seed: int, n_past: int, acquisition: str, extra: int) -> int:
    """A Hartmann6 bo group that starts with `n_past` imported, finished trials.

    Its initial design is one trial: the service counts it in proposals, not in imported
    results, so with the usual 10 the first 10 requests would be Sobol points, not the model.
    """
    rng = np.random.default_rng(seed)
    points = rng.random((n_past, 6))
    values = hartmann6_many(points)
    problem = PROBLEMS["hartmann6"]
    body = service_spec("bo", problem, 1, seed, N_INITIAL + n_past + extra, acquisition)
    body["hptuning"]["bo"]["n_initial_trials"] = 1
    body["trials"] = [
        {"params": {f"x{i + 1}": float(v) for i, v in enumerate(row)}, "values": {"y": float(y)}}
        for row, y in zip(points, values, strict=True)
    ]
    return create_group(base_url, body)


def ask_and_complete(http: Any, group_id: int) -> tuple[float, bool, str]:
    """One timed suggestion request, then its completion.

    Returns the seconds the request took, whether it was served from the queue, and the
    phase the suggestion came from ("initial" or "model").
    """
    t0 = time.perf_counter()
    response = http.post(
        f"/api/v1/groups/{group_id}/suggestions",
        json={"count": 1, "worker_id": "latency", "wait_seconds": 10},
    )
    elapsed = time.perf_counter() - t0
    response.raise_for_status()
    answer = response.json()
    if not answer["trials"]:
        raise RuntimeError(f"no trial handed out: {answer}")
    trial = answer["trials"][0]
    value = PROBLEMS["hartmann6"].evaluate(trial["params"])
    done = http.post(
        f"/api/v1/trials/{trial['id']}/complete",
        json={"status": "succeeded", "values": {"y": value}},
    )
    done.raise_for_status()
    reason = trial.get("reason") or {}
    return elapsed, bool(reason.get("queued")), str(reason.get("phase"))


def measure_latency(
    base_url: str,
    start_worker: Callable[[], None],
    stop_worker: Callable[[], None],
    *,
    samples: int,
    n_past: int,
    queue_sleep_s: float,
    acquisition: str,
) -> Latency:
    import httpx

    out = Latency(n_observations=n_past)
    warmup = 3
    with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S) as http:
        # (a) on demand: no worker, so every request computes its suggestion itself.
        stop_worker()
        group_id = latency_group(base_url, 1001, n_past, acquisition, samples + warmup + 5)
        for i in range(samples + warmup):
            elapsed, queued, phase = ask_and_complete(http, group_id)
            if phase != "model":
                out.not_model += 1
            elif i >= warmup:  # the first requests of a server process build its caches
                out.on_demand_s.append(elapsed)
                out.on_demand_queued += queued
        http.post(f"/api/v1/groups/{group_id}/stop").raise_for_status()
        # (b) from the queue: the worker refills after each completion; give it time, then ask.
        group_id = latency_group(base_url, 1002, n_past, acquisition, samples + 30)
        start_worker()
        # The worker's first refill pays its imports and caches: rounds until one request
        # is served from the queue are warm-up, not counted (at most 20 of them).
        for _ in range(20):
            time.sleep(queue_sleep_s)
            out.queue_warmup += 1
            if ask_and_complete(http, group_id)[1]:
                break
        for _ in range(samples):
            time.sleep(queue_sleep_s)
            elapsed, queued, phase = ask_and_complete(http, group_id)
            if phase != "model":
                out.not_model += 1
            else:
                (out.queue_s if queued else out.queue_missed_s).append(elapsed)
        http.post(f"/api/v1/groups/{group_id}/stop").raise_for_status()
    return out


# --------------------------------------------------------------------------- report


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    q25, q50, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q50), float(q25), float(q75)


def fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if v == 0.0:
        return "0"
    return f"{v:.3g}"


def regrets(
    results: Sequence[RunResult], optimum: Mapping[str, float], budget: int
) -> dict[tuple[str, str, int], list[float]]:
    out: dict[tuple[str, str, int], list[float]] = {}
    for r in results:
        best = r.best_after(budget)
        if r.error is None and not math.isnan(best):
            out.setdefault((r.problem, r.system, r.workers), []).append(best - optimum[r.problem])
    return out


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def compare(
    table: Mapping[tuple[str, str, int], list[float]],
    problem: str,
    workers: int,
    ours: str,
    theirs: str,
    strict: bool,
) -> tuple[bool | None, str]:
    a, b = table.get((problem, ours, workers)), table.get((problem, theirs, workers))
    if not a or not b:
        return None, "not run"
    ma, mb = float(np.median(a)), float(np.median(b))
    met = ma < mb if strict else ma <= mb
    p = mann_whitney_p(a, b)
    return met, f"{fmt(ma)} vs {fmt(mb)} (n={len(a)}/{len(b)}, Mann-Whitney p={p:.2f})"


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


def report(
    results: Sequence[RunResult],
    latency: Latency | None,
    optimum: Mapping[str, float],
    mixed_argmin: Mapping[str, float],
    args: argparse.Namespace,
    plan: Mapping[str, Any],
    runtime_s: float,
    command: str,
    skipped: Sequence[Job],
) -> str:
    budgets: list[int] = args.budgets
    workers_list: list[int] = args.workers
    systems = [s for s in ALL_SYSTEMS if s in args.systems]
    lines: list[str] = []
    add = lines.append
    add("# Search quality: hpo-engine against Optuna")
    add("")
    add(f"- command: `{command}`")
    add(
        f"- machine: {platform.platform()}, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}; load average at start {plan['loadavg_start']}, "
        f"at end {plan['loadavg_end']} (the machine is shared)"
    )
    add(f"- date: {plan['date']}; runtime {runtime_s / 60:.1f} min")
    add(f"- versions: {plan['versions']}")
    add(
        f"- design: functions {', '.join(args.functions)}; seeds 0..{args.seeds - 1}; "
        f"{', '.join(map(str, workers_list))} concurrent client(s); systems "
        f"{', '.join(systems)}. Budgets {', '.join(map(str, budgets))} are prefixes of one "
        "run (the best of the first k trials to complete), not separate runs."
    )
    expensive = ", ".join(SYSTEM_LABEL[s] for s in EXPENSIVE if s in systems)
    add(
        f"- reduced to fit the time: {expensive} run {args.trials} trials only for seeds "
        f"0..{args.full_seeds - 1} and {args.short_trials} trials for the others, so their "
        f"{args.trials}-trial cells have fewer seeds (n is shown); every other system runs "
        f"{args.trials} trials for every seed. No run starts after {args.budget_minutes:g} "
        "minutes (less the latency part's share)."
        if args.full_seeds < args.seeds and args.short_trials < args.trials and expensive
        else f"- every run has {args.trials} trials."
    )
    add(
        f"- scheduling: the 1-client runs of seed(s) 0..{args.timing_seeds - 1} ran one at a "
        "time, nothing else of this benchmark beside them: the wall times per suggestion come "
        f"from those runs only. The other runs ran {args.parallel} at a time."
    )
    add(
        f"- runs: {plan['n_runs']} planned, {len(results)} started, "
        f"{sum(r.error is None for r in results)} finished without error, "
        f"{sum(r.error is not None for r in results)} failed, {len(skipped)} not started "
        "(time budget)"
    )
    add(
        f"- hpo bo: n_initial_trials {N_INITIAL}, pending_strategy left out (kriging "
        "believer); `bo`: no utility_function, i.e. the default UCB with kappa 2.576; "
        "`bo_ei`: utility_function EI with eps 0 and a Matern kernel with nu 2.5, the "
        "acquisition and kernel of Optuna's GPSampler"
        f"; hpo tpe: n_initial_trials {N_INITIAL}, its defaults (a joint Parzen estimator over "
        "all params; numeric lists modelled by rank). Service: `hpo serve --workers 2` and one "
        "`hpo worker` on PostgreSQL, driven over HTTP."
    )
    add(
        "- Optuna: in-memory storage, ask/tell from as many threads as clients; GPSampler(seed) "
        "and RandomSampler(seed) with defaults; TPESampler(seed) with Optuna's defaults "
        "(in this version multivariate and constant_liar are on), and TPESampler(seed, "
        "multivariate=False); torch limited to one thread. Discrete x5, x6 of the mixed "
        "function: suggest_float(0, 1, step=0.25) (ordinal, as the service encodes a numeric "
        "`values` list); c: suggest_categorical."
    )
    add(
        f"- optima: Branin {BRANIN_OPTIMUM}, Hartmann6 {HARTMANN6_OPTIMUM}, mixed "
        f"{optimum.get('mixed', math.nan):.5f} (computed here at x = {dict(mixed_argmin)}, c = a)"
    )
    if skipped:
        add("")
        add("Runs not started (time budget):")
        add("")
        by_cell: dict[tuple[str, str, int], list[int]] = {}
        for j in skipped:
            by_cell.setdefault((j.system, j.problem, j.workers), []).append(j.seed)
        for (system, problem, w), seeds in sorted(by_cell.items()):
            add(f"- {system} {problem} {w}w: seeds {', '.join(map(str, seeds))}")
    failed = [r for r in results if r.error is not None]
    if failed:
        add("")
        add("Failed runs (left out of the statistics):")
        add("")
        for r in failed:
            add(f"- {r.system} {r.problem} {r.workers}w seed {r.seed}: {r.error}")
    add("")
    add("## Regret: median [25th percentile, 75th percentile] over seeds")
    add("")
    add("Regret = best value found - optimum; lower is better. n = seeds that finished.")
    tables = {b: regrets(results, optimum, b) for b in budgets}
    for problem in args.functions:
        add("")
        add(f"### {problem}")
        add("")
        header = ["system"] + [f"{b} trials, {w}w" for w in workers_list for b in budgets]
        add("| " + " | ".join(header) + " |")
        add("|" + " --- |" * len(header))
        for system in systems:
            cells = [SYSTEM_LABEL[system]]
            for w in workers_list:
                for b in budgets:
                    vals = tables[b].get((problem, system, w))
                    if not vals:
                        cells.append("not run")
                        continue
                    med, q25, q75 = quartiles(vals)
                    n = "" if len(vals) == args.seeds else f" (n={len(vals)})"
                    cells.append(f"{fmt(med)} [{fmt(q25)}, {fmt(q75)}]{n}")
            add("| " + " | ".join(cells) + " |")
        add("")
        add(f"n = {args.seeds} seeds per cell unless shown.")
    add("")
    add("## Wall time per suggestion (1-client runs that ran alone)")
    add("")
    add(
        "From asking to holding the configuration, as the client sees it: for the service the "
        "whole HTTP request (the model computed on demand or taken from the queue); for Optuna "
        "`study.ask()` plus the `suggest_*` calls. Mean / 95th percentile over all suggestions "
        "of the runs that ran alone, in ms; and the median wall time of such a whole run in s "
        "(GP-based systems: of a run of its length, given in the last column)."
    )
    add("")
    header = (
        ["system"]
        + [f"{p} mean / p95 ms" for p in args.functions]
        + ["run wall s (median)", "trials per run"]
    )
    add("| " + " | ".join(header) + " |")
    add("|" + " --- |" * len(header))
    for system in systems:
        cells = [SYSTEM_LABEL[system]]
        walls: list[float] = []
        for problem in args.functions:
            runs = [
                r
                for r in results
                if r.system == system
                and r.problem == problem
                and r.workers == 1
                and r.alone
                and not r.error
            ]
            times = [t for r in runs for t in r.suggest_s]
            walls += [r.wall_s for r in runs]
            if not times:
                cells.append("not run")
            else:
                mean = float(np.mean(times)) * 1000
                cells.append(f"{mean:.1f} / {_percentile_ms(times, 95):.1f}")
        cells.append(f"{np.median(walls):.1f}" if walls else "not run")
        lengths = sorted(
            {r.trials for r in results if r.system == system and r.alone and not r.error}
        )
        cells.append(", ".join(map(str, lengths)) or "-")
        add("| " + " | ".join(cells) + " |")
    queue_lines = []
    for system in ("bo", "bo_ei", "tpe"):
        for w in workers_list:
            runs = [r for r in results if r.system == system and r.workers == w and not r.error]
            handed = sum(len(r.suggest_s) for r in runs)
            if handed:
                queued = sum(r.queued for r in runs)
                queue_lines.append(
                    f"{SYSTEM_LABEL[system]} {w}w: {queued} of {handed} "
                    f"({100 * queued / handed:.0f} %)"
                )
    if queue_lines:
        add("")
        add(
            "Suggestions served from the worker's queue during these runs: "
            + "; ".join(queue_lines)
            + "."
        )
    add("")
    add("## Latency of a suggestion request, bo group with 200 finished trials")
    add("")
    if latency is None:
        add("Not measured in this run (--no-latency).")
    else:
        add(
            f"Hartmann6, bo ({args.bo_acquisition}), created with {latency.n_observations} "
            "imported finished trials; each request is followed by its completion, so the "
            f"group grows from {latency.n_observations} observations by one per sample. "
            "(a) No worker "
            "running: every request computes its suggestion (3 warm-up requests not counted). "
            f"(b) Worker running: complete, sleep {args.queue_sleep:g} s, then ask; only "
            "requests whose trial says `reason.queued` count as queue-served; the "
            f"{latency.queue_warmup} rounds up to the worker's first refill (its start-up) "
            "are not counted. Only suggestions of the model phase (`reason.phase`) count: "
            f"{latency.not_model} suggestion(s) of the initial design left out."
        )
        add("")
        add("| path | samples | p50 ms | p95 ms | max ms |")
        add("| --- | --- | --- | --- | --- |")
        for label, s in (
            ("on demand (no worker)", latency.on_demand_s),
            ("from the queue (worker running)", latency.queue_s),
            ("worker running, but computed on demand", latency.queue_missed_s),
        ):
            if s:
                add(
                    f"| {label} | {len(s)} | {_percentile_ms(s, 50):.1f} | "
                    f"{_percentile_ms(s, 95):.1f} | {max(s) * 1000:.1f} |"
                )
            else:
                add(f"| {label} | 0 | - | - | - |")
    add("")
    add("## Targets")
    add("")
    b60 = 60 if 60 in budgets else budgets[len(budgets) // 2]
    t60 = tables[b60]
    for ours in ("bo", "bo_ei"):
        for w in workers_list:
            for problem in args.functions:
                met, text = compare(t60, problem, w, ours, "optuna_gp", strict=True)
                if met is not None:
                    add(
                        f"- {SYSTEM_LABEL[ours]} median regret < Optuna GPSampler's, {problem}, "
                        f"{b60} trials, {w}w: {verdict(met)}: {text}"
                    )
    for w in workers_list:
        for problem in args.functions:
            met, text = compare(t60, problem, w, "tpe", "optuna_tpe", strict=False)
            add(
                f"- hpo tpe median regret <= Optuna TPESampler's (defaults), {problem}, "
                f"{b60} trials, {w}w: {verdict(met)}: {text}"
            )
            met2, text2 = compare(t60, problem, w, "tpe", "optuna_tpe_indep", strict=False)
            if met2 is not None:
                add(f"  - against TPESampler(multivariate=False): {verdict(met2)}: {text2}")
    if latency is not None:
        p95q = _percentile_ms(latency.queue_s, 95)
        p95d = _percentile_ms(latency.on_demand_s, 95)
        add(
            "- p95 of a queue-served bo suggestion (200 finished trials) < 50 ms: "
            f"{verdict(None if math.isnan(p95q) else p95q < 50)}: {p95q:.1f} ms "
            f"({len(latency.queue_s)} of {len(latency.queue_s) + len(latency.queue_missed_s)} "
            "requests were queue-served)"
        )
        add(
            "- p95 of an on-demand bo suggestion (200 finished trials) < 1 s: "
            f"{verdict(None if math.isnan(p95d) else p95d < 1000)}: {p95d:.1f} ms"
        )
    add("")
    add("All regret medians at every budget, for the comparisons above:")
    add("")
    for b in budgets:
        for w in workers_list:
            for problem in args.functions:
                parts = []
                for ours, theirs in (
                    ("bo", "optuna_gp"),
                    ("bo_ei", "optuna_gp"),
                    ("tpe", "optuna_tpe"),
                ):
                    strict = ours != "tpe"
                    met, text = compare(tables[b], problem, w, ours, theirs, strict=strict)
                    if met is not None:
                        parts.append(f"{ours} vs {theirs}: {text}")
                if parts:
                    add(f"- {problem}, {b} trials, {w}w: " + "; ".join(parts))
    add("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per cell")
    parser.add_argument("--trials", type=int, default=100, help="trials per run")
    parser.add_argument("--budgets", default="30,60,100", help="prefixes to report")
    parser.add_argument("--functions", default="branin,hartmann6,mixed")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    parser.add_argument("--workers", default="1,4", help="concurrent clients per run")
    parser.add_argument("--bo-acquisition", choices=("ei", "ucb"), default="ucb")
    parser.add_argument(
        "--short-trials",
        type=int,
        default=60,
        help="trials of a bo / GPSampler run from seed --full-seeds on",
    )
    parser.add_argument(
        "--full-seeds", type=int, default=1, help="seeds whose bo / GPSampler runs go to --trials"
    )
    parser.add_argument(
        "--timing-seeds",
        type=int,
        default=1,
        help="1-client seeds run one at a time first; wall times come from these runs",
    )
    parser.add_argument("--parallel", type=int, default=3, help="other runs executed at once")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=23.0,
        help="no run starts after this (less the latency part's share); the rest is reported",
    )
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument("--queue-sleep", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.md")
    parser.add_argument("--raw", type=Path, default=None, help="also write every run as JSON")
    args = parser.parse_args(argv)
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.functions = [f for f in args.functions.split(",") if f]
    args.systems = [s for s in args.systems.split(",") if s]
    args.workers = [int(w) for w in args.workers.split(",")]
    for name in args.functions:
        if name not in PROBLEMS:
            parser.error(f"unknown function {name}")
    for name in args.systems:
        if name not in ALL_SYSTEMS:
            parser.error(f"unknown system {name}")
    if max(args.budgets) > args.trials:
        parser.error("a budget exceeds --trials")
    return args


def versions() -> str:
    import optuna
    import scipy
    import torch

    return f"optuna {optuna.__version__}, torch {torch.__version__}, scipy {scipy.__version__}"


def loadavg() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM unwinds like Ctrl-C, so the server is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.perf_counter()
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    plan: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": loadavg(),
        "versions": versions(),
    }
    optimum = {"branin": BRANIN_OPTIMUM, "hartmann6": HARTMANN6_OPTIMUM}
    mixed_argmin: dict[str, float] = {}
    # The mixed optimum is computed in the background while the service starts.
    solved: dict[str, tuple[float, dict[str, float]]] = {}
    solver = threading.Thread(
        target=lambda: solved.update(mixed=mixed_optimum()), name="mixed-optimum", daemon=True
    )
    if "mixed" in args.functions:
        solver.start()
    jobs = plan_jobs(args)
    plan["n_runs"] = len(jobs)
    print(f"{len(jobs)} runs planned", flush=True)

    db_name = f"bench_quality_{os.getpid()}"
    results: list[RunResult] = []
    skipped: list[Job] = []
    latency: Latency | None = None
    logdir = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    print(f"server logs in {logdir}", flush=True)
    with fresh_database(db_name) as db_url, ExitStack() as stack:
        env = dict(os.environ, HPO_DATABASE_URL=db_url, HPO_LOG_LEVEL="WARNING")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server_log = stack.enter_context((logdir / "server.log").open("wb"))
        server = Process(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
            env,
            server_log,
        )
        stack.callback(server.stop)
        wait_ready(base_url, server)
        worker_log = stack.enter_context((logdir / "worker.log").open("wb"))
        worker: list[Process] = []

        def start_worker() -> None:
            if not worker or worker[-1].popen.poll() is not None:
                worker.append(Process([sys.executable, "-m", "app.cli", "worker"], env, worker_log))

        def stop_worker() -> None:
            if worker:
                worker[-1].stop()

        start_worker()
        stack.callback(stop_worker)

        has_optuna = any(j.system in OPTUNA_SYSTEMS for j in jobs)
        pool_size = max(1, args.parallel) if has_optuna else 0
        pool = (
            ProcessPoolExecutor(
                pool_size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_optuna_worker_init,
            )
            if pool_size
            else None
        )
        if pool is not None:
            stack.callback(lambda: pool.shutdown(wait=False, cancel_futures=True))
        if any(j.system in SERVICE_SYSTEMS for j in jobs):
            # Warm-up groups, not counted: the first model-based requests of each process
            # import scikit-learn and build caches.
            for system in ("bo", "tpe"):
                if system in args.systems:
                    run_service(base_url, system, "branin", 2, 999, 14, args.bo_acquisition)
        if pool is not None:
            # Every pool process imports torch and pays GPSampler's first call before timing.
            for f in [pool.submit(time.sleep, 0.5) for _ in range(pool_size)]:
                f.result()
        if "mixed" in args.functions:
            solver.join()
            if "mixed" not in solved:
                raise RuntimeError("the mixed function's optimum could not be computed")
            optimum["mixed"], mixed_argmin = solved["mixed"]
            print(f"mixed optimum {optimum['mixed']:.6f} at {mixed_argmin}", flush=True)

        def execute(job: Job) -> RunResult:
            if job.system in SERVICE_SYSTEMS:
                r = run_service(
                    base_url,
                    job.system,
                    job.problem,
                    job.workers,
                    job.seed,
                    job.trials,
                    args.bo_acquisition,
                )
            else:
                assert pool is not None
                r = pool.submit(
                    run_optuna, job.system, job.problem, job.workers, job.seed, job.trials
                ).result()
            r.trials, r.alone = job.trials, job.alone
            budgets = " ".join(
                f"{b}:{fmt(r.best_after(b) - optimum[job.problem])}" for b in args.budgets
            )
            print(
                f"[{(time.perf_counter() - started) / 60:5.1f} min] {job.system:16s} "
                f"{job.problem:9s} {job.workers}w seed {job.seed} ({job.trials} trials"
                f"{', alone' if job.alone else ''}): regret {budgets}; {r.wall_s:.1f} s"
                + (f"; queued {r.queued}" if job.system in SERVICE_SYSTEMS else "")
                + (f"; ERROR {r.error}" if r.error else ""),
                flush=True,
            )
            return r

        # No run starts once the time left is needed by the latency part and the report.
        reserve_s = 0.0
        if not args.no_latency:
            reserve_s = 60.0 + args.latency_samples * (args.queue_sleep + 1.5)
        cutoff = started + args.budget_minutes * 60.0 - reserve_s
        pending = list(jobs)
        lock = threading.Lock()

        def next_job(alone: bool) -> Job | None:
            with lock:
                if not pending or pending[0].alone != alone or time.perf_counter() > cutoff:
                    return None
                return pending.pop(0)

        def runner(alone: bool) -> None:
            while (job := next_job(alone)) is not None:
                r = execute(job)
                with lock:
                    results.append(r)

        runner(alone=True)
        threads = [
            threading.Thread(target=runner, args=(False,), daemon=True)
            for _ in range(max(1, args.parallel))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        skipped.extend(pending)
        if skipped:
            print(f"time budget reached: {len(skipped)} runs not started", flush=True)

        if not args.no_latency:
            print("latency measurement ...", flush=True)
            try:
                latency = measure_latency(
                    base_url,
                    start_worker,
                    stop_worker,
                    samples=args.latency_samples,
                    n_past=200,
                    queue_sleep_s=args.queue_sleep,
                    acquisition=args.bo_acquisition,
                )
            except Exception as exc:  # reported, the quality figures are kept
                print(f"latency measurement failed: {exc!r}", flush=True)
    plan["loadavg_end"] = loadavg()
    runtime = time.perf_counter() - started
    text = report(results, latency, optimum, mixed_argmin, args, plan, runtime, command, skipped)
    print(text, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.raw is not None:
        args.raw.write_text(json.dumps([r.__dict__ for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

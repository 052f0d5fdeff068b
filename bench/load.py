"""Load test: hundreds of simulated training workers against `hpo serve` on PostgreSQL.

The script makes a fresh database on the local PostgreSQL (postgres@127.0.0.1:5432), starts
`python -m app.cli serve --workers N` on it as a user would (and, unless told not to, one
`python -m app.cli worker` that precomputes bo/tpe suggestions), creates groups of every
algorithm (grid, random, Hyperband, ASHA, bo, tpe) and runs W simulated workers for D seconds.

Every worker is an asyncio task (on uvloop when it is installed); every 5 workers share one
httpx.AsyncClient. Not one client for all: httpcore's pool looks through all its connections
(and queued requests) on each request, and with 300 workers on one client that cost about 12 ms
of CPU per request on this machine against about 1 ms with a client per 5 workers (a stub server,
same load). Also, with sniffio absent, httpcore's per-request `import sniffio` is made to fail
at once instead of searching sys.path. The workers loop the way a training worker does: ask for
one suggestion; train for a few steps (a 50-200 ms sleep each), reporting the loss of each;
complete the trial with its final loss. An empty answer is followed by a sleep
of the `retry_after` the service asked for (at most MAX_BACKOFF); a finished group is replaced by
a fresh one with the same spec. The model-based groups get few workers (their suggestions are
slow to compute); the others share the rest.

Measured: requests per second and latency percentiles by route (for requests started in the
window after the warm-up), every non-2xx answer and transport error by route and kind (over the
whole run; a 503 with Retry-After is the service shedding load and is counted apart), database
connections (pg_stat_activity of the run's database, by state, and the PostgreSQL sockets each
server process holds, both sampled every second) against the pools' limit, trials completed per
algorithm (by the client, and as the service counts them at the end), the client's own CPU and
event-loop lag, the CPU of the servers, the worker and PostgreSQL, and the machine's load. The
client's counts of requests per route are set against the service's own counter
(hpo_http_requests_total on /metrics) to find requests lost on the way.

Run from the repository root; it takes the duration plus about half a minute:

    .venv/bin/python bench/load.py [--workers 500] [--duration 60] [--api-processes 2] \
        [--no-precompute-worker] [--output bench/results/load.md]

The database (hpo_load_<random>) is dropped at the end and the processes are stopped, also on
Ctrl-C or failure. The servers' logs are kept (their directory is printed) when the run found an
error or the logs hold warnings, or with --keep-logs.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for app.config: the pools' sizes come from the service's settings

# httpcore asks `import sniffio` each time it makes a lock or semaphore (several per request);
# without sniffio installed, each failed import searches all of sys.path again, which more than
# doubled this client's CPU per request. A None entry makes that import fail at once, and
# httpcore then assumes asyncio, which is what runs here.
if "sniffio" not in sys.modules:
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres"
PG_PORT = 5432
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
CLK_TCK = os.sysconf("SC_CLK_TCK")

WORKER_POOL = 2 + 2  # `hpo worker`: Database(pool_size=2, max_overflow=2) in app/cli.py
START_TIMEOUT = 90.0  # seconds for the servers to answer /readyz
MAX_BACKOFF = 2.0  # the longest a worker sleeps on an empty answer, whatever retry_after says
ERROR_PAUSE = 0.5  # after a failed request, unless the answer says Retry-After
STEP_SLEEP = (0.05, 0.2)  # simulated training per reported step, seconds
STEPS = (2, 4)  # metric reports per trial
REQUEST_TIMEOUT = 60.0
FINISHED = ("done", "stopped", "failed")
EXAMPLES = 5  # problem bodies kept per run, to show what went wrong
# Warnings every start logs by design: listed in the report, not counted as trouble.
START_WARNINGS = {"auth.open"}

SUGGEST = "POST /groups/{id}/suggestions"
METRICS = "POST /trials/{id}/metrics"
COMPLETE = "POST /trials/{id}/complete"
CREATE = "POST /groups"
ROUTES = (SUGGEST, METRICS, COMPLETE, CREATE)
# The same routes as the service's metrics name them.
SERVER_ROUTES = {
    SUGGEST: ("POST", "/api/v1/groups/{group_id}/suggestions"),
    METRICS: ("POST", "/api/v1/trials/{trial_id}/metrics"),
    COMPLETE: ("POST", "/api/v1/trials/{trial_id}/complete"),
    CREATE: ("POST", "/api/v1/groups"),
}

ALGORITHMS = ("grid_search", "random_search", "hyperband", "asha", "bo", "tpe")
MODEL_BASED = ("bo", "tpe")


# --------------------------------------------------------------------------- the groups


def group_request(algorithm: str, concurrency: int, seed: int) -> dict[str, Any]:
    """A create-group body whose budget outlasts the run (synchronous Hyperband's does not)."""
    continuous = {"lr": {"loguniform": [-13.8, -2.3]}, "x": {"uniform": [0, 1]}}
    depth = {"depth": {"values": [1, 2, 3, 4]}}
    objective = {"objective": {"name": "loss", "optimization": "minimize"}}
    metric = {"name": "loss", "optimization": "minimize"}
    hptuning: dict[str, Any] = {"concurrency": concurrency, "seed": seed}
    if algorithm == "grid_search":
        # 50 x 50 x 4 x 5 = 50,000 cells.
        hptuning["matrix"] = {
            "lr": {"logspace": "-6:-1:50"},
            "x": {"linspace": "0:1:50"},
            **depth,
            "width": {"values": [32, 64, 128, 256, 512]},
        }
        return {"hptuning": hptuning, **objective, "name": f"load grid {seed}"}
    if algorithm == "random_search":
        hptuning["random_search"] = {"n_experiments": 10_000_000}
        hptuning["matrix"] = {**continuous, **depth}
        return {"hptuning": hptuning, **objective, "name": f"load random {seed}"}
    if algorithm in ("hyperband", "asha"):
        asynchronous = algorithm == "asha"
        hyperband: dict[str, Any] = {
            # Synchronous: 243/3 is a plan of a few hundred trials, done (and replaced by a
            # fresh group) within the run, so rung promotions and group ends are exercised.
            "max_iter": 81 if asynchronous else 243,
            "eta": 3,
            "resource": {"name": "epochs", "type": "int"},
            "metric": metric,
            "resume": True,
            "asynchronous": asynchronous,
        }
        if asynchronous:
            hyperband["n_experiments"] = 1_000_000
        hptuning["hyperband"] = hyperband
        hptuning["matrix"] = {**continuous, **depth}
        return {"hptuning": hptuning, "name": f"load {algorithm} {seed}"}
    if algorithm == "bo":
        hptuning["bo"] = {
            "n_initial_trials": 8,
            "n_iterations": 100_000,
            "metric": metric,
            "utility_function": {"acquisition_function": "ei", "eps": 0.0},
        }
        hptuning["matrix"] = {**continuous, **depth}
        return {"hptuning": hptuning, "name": f"load bo {seed}"}
    if algorithm == "tpe":
        hptuning["tpe"] = {"n_experiments": 100_000, "n_initial_trials": 10, "metric": metric}
        hptuning["matrix"] = {**continuous, **depth}
        return {"hptuning": hptuning, "name": f"load tpe {seed}"}
    raise ValueError(algorithm)


def loss(params: dict[str, Any], step: int, rng: random.Random) -> float:
    """A synthetic learning curve: a floor set by the params, falling with steps and epochs."""
    lr = float(params.get("lr", 1e-3))
    floor = (math.log10(max(lr, 1e-12)) + 3.0) ** 2 / 4 + (float(params.get("x", 0.3)) - 0.3) ** 2
    floor += 0.05 * float(params.get("depth", 1))
    effort = step * float(params.get("epochs", 3))
    return floor + 1.0 / (1.0 + effort) + rng.gauss(0, 0.01)


def plan_slots(workers: int, model_concurrency: int, groups_per_algorithm: int) -> list["Slot"]:
    """Split the workers: a few per model-based group, the rest evenly over the others."""
    model = max(1, min(model_concurrency, workers // 12))
    fast = [a for a in ALGORITHMS if a not in MODEL_BASED]
    rest = workers - model * len(MODEL_BASED)
    n_fast = len(fast) * groups_per_algorithm
    if rest < n_fast:
        raise SystemExit(f"--workers {workers} is too few for {n_fast} groups and the models")
    slots = []
    for i in range(n_fast):
        share = rest // n_fast + (1 if i < rest % n_fast else 0)
        # Twice the workers: a trial left running by a failed request does not block anyone.
        slots.append(Slot(fast[i % len(fast)], share, 2 * share))
    for algorithm in MODEL_BASED:
        slots.append(Slot(algorithm, model, model))
    return slots


@dataclass
class Slot:
    """One group a share of the workers trains for; replaced by a fresh one when it finishes."""

    algorithm: str
    workers: int
    concurrency: int
    group_id: int = 0
    group_ids: list[int] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# --------------------------------------------------------------------------- recording


def phase_of(now: float, t0: float, t1: float) -> str:
    return "warm-up" if now < t0 else ("window" if now < t1 else "drain")


@dataclass
class Stats:
    t0: float = 0.0  # the measured window, in time.perf_counter() seconds
    t1: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    suggest_by_algorithm: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    window_requests: Counter = field(default_factory=Counter)  # route -> answered in window
    sent: Counter = field(default_factory=Counter)  # route -> requests sent, whole run
    statuses: Counter = field(default_factory=Counter)  # (route, status) whole run
    errors: Counter = field(default_factory=Counter)  # (route, kind, phase) whole run
    shed: Counter = field(default_factory=Counter)  # (route, phase): 503 with Retry-After
    examples: list[str] = field(default_factory=list)
    completed: Counter = field(default_factory=Counter)  # algorithm -> trials, whole run
    completed_window: Counter = field(default_factory=Counter)
    empty: Counter = field(default_factory=Counter)  # algorithm -> empty answers in window
    stopped_by_service: Counter = field(default_factory=Counter)
    abandoned: Counter = field(default_factory=Counter)  # trials left running after an error
    replaced: Counter = field(default_factory=Counter)
    group_status_seen: Counter = field(default_factory=Counter)  # (algorithm, final status)
    # Worker time in the window, seconds: waiting for answers, training, backing off.
    waiting: float = 0.0
    training: float = 0.0
    backoff: float = 0.0
    loop_lag: list[float] = field(default_factory=list)

    def in_window(self, began: float) -> bool:
        return self.t0 <= began < self.t1

    def error(self, route: str, kind: str, began: float, example: str) -> None:
        phase = phase_of(began, self.t0, self.t1)
        self.errors[(route, kind, phase)] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{phase}, {route}: {kind}: {example}")


class LoadClient:
    """The one HTTP client of all workers, and the bookkeeping of every call."""

    def __init__(self, http: Any, stats: Stats) -> None:
        self.http = http
        self.stats = stats

    async def post(
        self, route: str, path: str, body: dict[str, Any], *, algorithm: str | None = None
    ) -> tuple[int, Any, float]:
        """POST and record; (status, parsed body or None, pause the answer asked for).

        Status 0 is a transport error (timeout, connection refused or reset).
        """
        import httpx

        stats = self.stats
        stats.sent[route] += 1
        began = time.perf_counter()
        try:
            answer = await self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            ended = time.perf_counter()
            if stats.in_window(began):
                stats.waiting += ended - began
            stats.statuses[(route, 0)] += 1
            stats.error(route, type(exc).__name__, began, str(exc) or repr(exc))
            return 0, None, ERROR_PAUSE
        ended = time.perf_counter()
        status = answer.status_code
        stats.statuses[(route, status)] += 1
        if stats.in_window(began):
            elapsed = ended - began
            stats.waiting += elapsed
            stats.latencies[route].append(elapsed)
            stats.window_requests[route] += 1
            if algorithm is not None and route == SUGGEST:
                stats.suggest_by_algorithm[algorithm].append(elapsed)
        if 200 <= status < 300:
            # Only a suggestion's and a metric report's answers are read; a completion's is not.
            return status, (answer.json() if route != COMPLETE else None), 0.0
        retry_after = answer.headers.get("retry-after")
        pause = ERROR_PAUSE
        if status == 503 and retry_after is not None:
            stats.shed[(route, phase_of(began, stats.t0, stats.t1))] += 1
            try:
                pause = min(float(retry_after), MAX_BACKOFF)
            except ValueError:
                pass
        try:
            problem = answer.json()
            text = f"{problem.get('title')}: {problem.get('detail')}"
        except ValueError:
            text = answer.text[:200]
        kind = f"{status}" + (" + Retry-After" if retry_after is not None else "")
        stats.error(route, kind, began, text)
        return status, None, pause


async def sleep_counted(stats: Stats, seconds: float, kind: str) -> None:
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    if stats.in_window(began):
        if kind == "training":
            stats.training += time.perf_counter() - began
        else:
            stats.backoff += time.perf_counter() - began


async def replace_group(client: LoadClient, slot: Slot, finished_id: int, status: str) -> None:
    """Create a fresh group for the slot, once, when its group has finished."""
    async with slot.lock:
        if slot.group_id != finished_id:
            return  # another worker of the slot did it already
        client.stats.group_status_seen[(slot.algorithm, status)] += 1
        seed = len(slot.group_ids) + 100 * ALGORITHMS.index(slot.algorithm)
        body = group_request(slot.algorithm, slot.concurrency, seed)
        code, answer, pause = await client.post(CREATE, "/api/v1/groups", body)
        if code != 201 or answer is None:
            await asyncio.sleep(pause)
            return
        slot.group_id = answer["id"]
        slot.group_ids.append(slot.group_id)
        client.stats.replaced[slot.algorithm] += 1


async def simulated_worker(
    client: LoadClient, slot: Slot, index: int, stop_at: float, ramp: float
) -> None:
    """Ask, train a few steps reporting the loss, complete; until stop_at."""
    stats = client.stats
    rng = random.Random(index)
    worker_id = f"load-{index}"
    algorithm = slot.algorithm
    await asyncio.sleep(rng.random() * ramp)
    while time.perf_counter() < stop_at:
        group_id = slot.group_id
        code, answer, pause = await client.post(
            SUGGEST,
            f"/api/v1/groups/{group_id}/suggestions",
            {"count": 1, "worker_id": worker_id},
            algorithm=algorithm,
        )
        if answer is None:
            await sleep_counted(stats, pause, "backoff")
            continue
        if not answer["trials"]:
            if answer["group_status"] in FINISHED:
                await replace_group(client, slot, group_id, answer["group_status"])
                continue
            if stats.in_window(time.perf_counter()):
                stats.empty[algorithm] += 1
            wait = answer.get("retry_after") or 1.0
            await sleep_counted(stats, min(wait, MAX_BACKOFF), "backoff")
            continue
        trial = answer["trials"][0]
        trial_id, params = trial["id"], trial["params"]
        value = math.nan
        for step in range(1, rng.randint(*STEPS) + 1):
            await sleep_counted(stats, rng.uniform(*STEP_SLEEP), "training")
            value = loss(params, step, rng)
            code, report, pause = await client.post(
                METRICS,
                f"/api/v1/trials/{trial_id}/metrics",
                {"values": {"loss": value}, "step": step},
            )
            if report is None:
                await sleep_counted(stats, pause, "backoff")
                break
            if report.get("should_stop"):
                stats.stopped_by_service[algorithm] += 1
                break
        body: dict[str, Any] = {"status": "succeeded"}
        if not math.isnan(value):
            body["values"] = {"loss": value}
        began = time.perf_counter()
        code, _, pause = await client.post(COMPLETE, f"/api/v1/trials/{trial_id}/complete", body)
        if code == 200:
            stats.completed[algorithm] += 1
            if stats.in_window(began):
                stats.completed_window[algorithm] += 1
        else:
            stats.abandoned[algorithm] += 1
            await sleep_counted(stats, pause, "backoff")


async def loop_lag_monitor(stats: Stats, stop_at: float, tick: float = 0.05) -> None:
    """How late the event loop wakes a sleeper: the client's own saturation."""
    while time.perf_counter() < stop_at:
        began = time.perf_counter()
        await asyncio.sleep(tick)
        if stats.in_window(began):
            stats.loop_lag.append(time.perf_counter() - began - tick)


# --------------------------------------------------------------------------- /proc


def proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process and its reaped children)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        # rest[0] is stat field 3 (state); utime..cstime are fields 14..17.
        table[int(entry)] = (int(rest[1]), sum(int(v) for v in rest[11:15]) / CLK_TCK)
    return table


def descendants(root: int, table: dict[int, tuple[int, float]]) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu(root: int | None, table: dict[int, tuple[int, float]]) -> float | None:
    if root is None or root not in table:
        return None
    return sum(table[pid][1] for pid in descendants(root, table))


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_pressure() -> str:
    """PSI's `some avg60` for the CPU, as a percentage, or a dash where the kernel has none."""
    try:
        with open("/proc/pressure/cpu") as f:
            fields = dict(part.split("=") for part in f.readline().split()[1:])
        return f"{float(fields['avg60']):.0f} %"
    except (OSError, KeyError, ValueError):
        return "—"


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postgres_sockets() -> set[int]:
    """Inodes of this host's established TCP sockets whose far end is PostgreSQL's port."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == PG_PORT:
                        inodes.add(int(parts[9]))
        except OSError:
            continue
    return inodes


def sockets_of(pid: int, wanted: set[int]) -> int:
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in wanted:
                count += 1
    except OSError:
        pass
    return count


# --------------------------------------------------------------------------- database connections


@dataclass
class ConnectionSamples:
    total: list[int] = field(default_factory=list)  # in the window
    by_state: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    per_process: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    max_whole_run: int = 0
    max_per_process_whole_run: dict[str, int] = field(default_factory=Counter)
    failures: int = 0


async def sample_connections(
    database: str,
    stats: Stats,
    samples: ConnectionSamples,
    processes: dict[str, int],
    stop_at: float,
    interval: float,
) -> None:
    """Every `interval` s: pg_stat_activity of the database by state, and each process's sockets.

    The sampler's own connection is to the `postgres` database, so it is not counted.
    """
    import psycopg

    async with await psycopg.AsyncConnection.connect(
        PG_CONNINFO + " dbname=postgres", autocommit=True
    ) as conn:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                cursor = await conn.execute(
                    "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
                    " WHERE datname = %s GROUP BY 1",
                    (database,),
                )
                rows = await cursor.fetchall()
            except psycopg.Error:
                samples.failures += 1
                rows = None
            wanted = postgres_sockets()
            table = proc_table()
            per_process: dict[str, int] = {}
            for name, root in processes.items():
                for pid in descendants(root, table):
                    held = sockets_of(pid, wanted)
                    key = f"{name} pid {pid}"
                    if held or key in samples.max_per_process_whole_run:
                        per_process[key] = held
            if rows is not None:
                total = sum(n for _, n in rows)
                samples.max_whole_run = max(samples.max_whole_run, total)
            for key, held in per_process.items():
                seen = samples.max_per_process_whole_run
                seen[key] = max(seen.get(key, 0), held)
            if stats.in_window(began):
                if rows is not None:
                    samples.total.append(total)
                    states = dict(rows)
                    for state in set(states) | set(samples.by_state):
                        samples.by_state[state].append(states.get(state, 0))
                for key, held in per_process.items():
                    samples.per_process[key].append(held)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - began)))


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    args: argparse.Namespace
    database: str
    command: str
    started_at: str = ""
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pressure_start: str = "—"
    pressure_end: str = "—"
    pg_version: str = ""
    postmaster: int | None = None
    pool_size: int = 10
    max_overflow: int = 10
    worker_started: bool = False
    slots: list[Slot] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    connections: ConnectionSamples = field(default_factory=ConnectionSamples)
    cpu: dict[str, float | None] = field(default_factory=dict)
    client_cpu_whole: float = 0.0
    server_counts: dict[tuple[str, str, str], float] = field(default_factory=dict)
    server_latency: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    group_views: dict[int, dict[str, Any]] = field(default_factory=dict)
    log_summary: Counter = field(default_factory=Counter)
    log_expected: Counter = field(default_factory=Counter)
    log_examples: list[str] = field(default_factory=list)
    log_dir: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def api_limit(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def limit(self) -> int:
        return self.args.api_processes * self.api_limit + (
            WORKER_POOL if self.worker_started else 0
        )


async def drive(run: Run, base: str, serve_pid: int, worker_pid: int | None) -> None:
    import httpx

    args = run.args
    stats = run.stats
    workers = args.workers
    shards = max(1, -(-workers // max(1, args.workers_per_client)))
    per_shard = -(-workers // shards)
    limits = httpx.Limits(
        max_connections=per_shard + 5,
        max_keepalive_connections=per_shard + 5,
        # Below uvicorn's 5 s keep-alive, so the client never reuses a connection the
        # server is closing.
        keepalive_expiry=3.0,
    )
    timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=10.0)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            LoadClient(
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout)
                ),
                stats,
            )
            for _ in range(shards)
        ]
        http = clients[0].http
        slots = run.slots
        for number, slot in enumerate(slots):
            body = group_request(slot.algorithm, slot.concurrency, number + 1)
            answer = await http.post("/api/v1/groups", json=body)
            if answer.status_code != 201:
                raise RuntimeError(f"creating a {slot.algorithm} group: {answer.text}")
            slot.group_id = answer.json()["id"]
            slot.group_ids.append(slot.group_id)

        processes = {"api": serve_pid} | ({"worker": worker_pid} if worker_pid else {})
        now = time.perf_counter()
        stats.t0 = now + args.warmup
        stats.t1 = stats.t0 + args.duration
        stop_at = stats.t1
        ramp = min(2.0, args.warmup)
        marks: dict[str, tuple[float, dict[str, float | None]]] = {}
        scrapes: dict[str, str] = {}

        async def mark(name: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            table = proc_table()
            marks[name] = (
                time.perf_counter(),
                {
                    "client": own_cpu(),
                    "servers": tree_cpu(serve_pid, table),
                    "worker": tree_cpu(worker_pid, table),
                    "postgres": tree_cpu(run.postmaster, table),
                    "machine": machine_busy(),
                },
            )
            # The service's own latency histograms, to set against what the workers saw.
            try:
                scrapes[name] = (await http.get("/metrics")).text
            except httpx.HTTPError as exc:
                run.notes.append(f"scraping /metrics at the window's {name}: {exc!r}")

        cpu_at_start = own_cpu()
        order = [slot for slot in slots for _ in range(slot.workers)]
        tasks = [
            asyncio.create_task(simulated_worker(clients[i % shards], slot, i, stop_at, ramp))
            for i, slot in enumerate(order)
        ]
        helpers = [
            asyncio.create_task(loop_lag_monitor(stats, stop_at)),
            asyncio.create_task(
                sample_connections(
                    run.database, stats, run.connections, processes, stop_at, args.sample_interval
                )
            ),
            asyncio.create_task(mark("start", stats.t0)),
            asyncio.create_task(mark("end", stats.t1)),
        ]
        sys.stderr.write(
            f"load: {workers} workers on {len(slots)} groups, {args.warmup:g} s warm-up, "
            f"{args.duration:g} s measured\n"
        )
        done, pending = await asyncio.wait(
            tasks + helpers, timeout=args.warmup + args.duration + REQUEST_TIMEOUT + 15
        )
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                run.notes.append(f"a task failed: {task.exception()!r}")
        if pending:
            run.notes.append(f"{len(pending)} tasks still running at the deadline, cancelled")
        run.client_cpu_whole = own_cpu() - cpu_at_start
        if "start" in marks and "end" in marks:
            (t_start, before), (t_end, after) = marks["start"], marks["end"]
            for key in before:
                b, a = before[key], after[key]
                run.cpu[key] = None if b is None or a is None else a - b
            run.cpu["seconds"] = t_end - t_start

        if "start" in scrapes and "end" in scrapes:
            run.server_latency = histogram_delta(scrapes["start"], scrapes["end"])
        # What the service counted, and where each group ended.
        scrape = await http.get("/metrics")
        run.server_counts = {
            (labels["method"], labels["route"], labels["status"]): value
            for labels, value in samples(scrape.text, "hpo_http_requests_total")
        }
        for slot in slots:
            for group_id in slot.group_ids:
                view = await http.get(f"/api/v1/groups/{group_id}")
                if view.status_code == 200:
                    run.group_views[group_id] = view.json() | {"_algorithm": slot.algorithm}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric in Prometheus' text format: (labels, value)."""
    found = []
    prefix = name + "{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, value = line[len(prefix) :].rsplit("} ", 1)
        labels = {}
        for part in labels_text.split('",'):
            key, _, raw = part.partition('="')
            labels[key.strip()] = raw.rstrip('"')
        found.append((labels, float(value)))
    return found


def histogram_delta(before: str, after: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(method, route) -> cumulative bucket counts [(upper bound, count)] gained in between."""
    name = "hpo_http_request_duration_seconds_bucket"
    start = {tuple(sorted(labels.items())): v for labels, v in samples(before, name)}
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for labels, value in samples(after, name):
        gained = value - start.get(tuple(sorted(labels.items())), 0.0)
        buckets[(labels["method"], labels["route"])].append((float(labels["le"]), gained))
    return {key: sorted(values) for key, values in buckets.items()}


def bucket_percentile(buckets: list[tuple[float, float]], q: float) -> float:
    """A percentile from cumulative buckets, linear within the bucket it falls in."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    wanted = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= wanted:
            if math.isinf(upper):
                return math.inf
            share = (wanted - below) / (count - below) if count > below else 1.0
            return lower + share * (upper - lower)
        lower, below = upper, count
    return math.inf


# --------------------------------------------------------------------------- processes


def admin_connection() -> Any:
    import psycopg

    return psycopg.connect(PG_CONNINFO + " dbname=postgres", autocommit=True)


def create_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_facts() -> tuple[int | None, str]:
    """The postmaster's pid (the parent of a backend), if /proc shows it, and the version."""
    with admin_connection() as conn:
        backend, version = conn.execute(
            "SELECT pg_backend_pid(), current_setting('server_version')"
        ).fetchone()
        table = proc_table()  # while the backend lives
    return (table[backend][0] if backend in table else None), version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        # A session of its own: Ctrl-C reaches this script only, which then stops it.
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its session
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hpo serve exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"hpo serve not ready after {START_TIMEOUT:.0f} s")


def read_logs(run: Run, paths: Sequence[Path]) -> None:
    """Count the service's log lines at warning and above (and lines that are not JSON)."""
    for path in paths:
        if not path.exists():
            continue
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    run.log_summary[(path.stem, "not JSON", line[:80])] += 1
                    continue
                level = str(event.get("level", "")).lower()
                if level in ("warning", "error", "critical", "exception"):
                    name = str(event.get("event"))
                    if name in START_WARNINGS:
                        run.log_expected[(path.stem, level, name)] += 1
                        continue
                    run.log_summary[(path.stem, level, name)] += 1
                    if len(run.log_examples) < EXAMPLES:
                        run.log_examples.append(f"{path.name}: {line[:1500]}")


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workers", type=int, default=500, help="simulated workers")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--api-processes", type=int, default=2, help="hpo serve --workers")
    parser.add_argument(
        "--no-precompute-worker",
        dest="precompute_worker",
        action="store_false",
        help="do not run `hpo worker` (bo and tpe suggestions are then computed by the API)",
    )
    parser.add_argument(
        "--model-concurrency", type=int, default=8, help="workers (and concurrency) of bo and tpe"
    )
    parser.add_argument(
        "--groups-per-algorithm",
        type=int,
        default=2,
        help="groups each of grid, random, Hyperband and ASHA (bo and tpe get one each)",
    )
    parser.add_argument(
        "--workers-per-client",
        type=int,
        default=5,
        help="workers sharing one httpx.AsyncClient (its pool looks at every connection it "
        "holds on each request; --workers-per-client 500 puts all on one client)",
    )
    parser.add_argument("--sample-interval", type=float, default=1.0, help="seconds")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "load.md", help="report file"
    )
    args = parser.parse_args(argv)

    from app.config import Settings

    settings = Settings()  # HPO_DB_POOL_SIZE and HPO_DB_MAX_OVERFLOW, as the servers read them
    run = Run(
        args=args,
        database=f"hpo_load_{uuid.uuid4().hex[:10]}",
        command=shlex.join(["python", *sys.argv]),
        started_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    run.slots = plan_slots(args.workers, args.model_concurrency, args.groups_per_algorithm)
    signal.signal(signal.SIGTERM, _interrupt)

    log_dir = Path(tempfile.mkdtemp(prefix="hpo-load-"))
    run.log_dir = str(log_dir)
    server_log, worker_log = log_dir / "server.log", log_dir / "worker.log"
    server = worker = None
    failed = False
    try:
        run.postmaster, run.pg_version = postgres_facts()
        create_database(run.database)
        env = dict(os.environ)
        env.update(
            HPO_DATABASE_URL=PG_URL.format(db=run.database),
            HPO_LOG_FORMAT="json",
            PYTHONDONTWRITEBYTECODE="1",
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port),
             "--workers", str(args.api_processes)],
            env | {"PGAPPNAME": "hpo-api"},
            server_log,
        )  # fmt: skip
        wait_ready(server, f"{base}/readyz", server_log)
        if args.precompute_worker:
            worker = start(
                [sys.executable, "-m", "app.cli", "worker"],
                env | {"PGAPPNAME": "hpo-worker"},
                worker_log,
            )
            run.worker_started = True
        run.load_start, run.pressure_start = os.getloadavg(), cpu_pressure()
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(drive(run, base, server.pid, worker.pid if worker else None))
        run.load_end, run.pressure_end = os.getloadavg(), cpu_pressure()
        if worker is not None and worker.poll() is not None:
            run.notes.append(f"`hpo worker` exited during the run (code {worker.returncode})")
        if server.poll() is not None:
            run.notes.append(f"`hpo serve` exited during the run (code {server.returncode})")
    except BaseException as exc:
        failed = not isinstance(exc, KeyboardInterrupt)
        raise
    finally:
        stop(worker)
        stop(server)
        try:
            drop_database(run.database)
        except Exception as exc:  # report, but do not hide the first failure
            sys.stderr.write(f"could not drop database {run.database}: {exc}\n")
        if failed:
            sys.stderr.write(f"run failed; the servers' logs are in {log_dir}\n")

    read_logs(run, [server_log, worker_log])
    report = render(run)
    sys.stdout.write(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    troubled = bool(run.stats.errors or run.log_summary or run.notes or over_limit(run))
    if troubled or args.keep_logs:
        sys.stderr.write(f"the servers' logs are kept in {log_dir}\n")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if troubled else 0


# --------------------------------------------------------------------------- the report


def uvloop_present() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:,.1f}"


def num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def server_side(run: Run, route: str) -> str:
    buckets = run.server_latency.get(SERVER_ROUTES[route])
    if not buckets:
        return "—"
    return " / ".join(
        "> 60 s" if math.isinf(v) else ms(v)
        for v in (bucket_percentile(buckets, 0.5), bucket_percentile(buckets, 0.99))
    )


def over_limit(run: Run) -> bool:
    conns = run.connections
    if conns.max_whole_run > run.limit:
        return True
    return any(
        held > (WORKER_POOL if key.startswith("worker") else run.api_limit)
        for key, held in conns.max_per_process_whole_run.items()
    )


def render(run: Run) -> str:
    args, stats, conns = run.args, run.stats, run.connections
    seconds = args.duration
    out: list[str] = []
    add = out.append
    total_window = sum(stats.window_requests.values())
    worker_time = stats.waiting + stats.training + stats.backoff
    asleep = stats.training + stats.backoff
    offered = total_window * worker_time / asleep / seconds if asleep else math.nan
    achieved = total_window / seconds
    all_errors = sum(stats.errors.values())
    shed = sum(stats.shed.values())
    window_errors = sum(n for (_, _, phase), n in stats.errors.items() if phase == "window")

    add("# Load: simulated training workers against two API processes on PostgreSQL\n")
    add(f"- Command: `{run.command}` (from {ROOT})")
    add(
        f"- Date: {run.started_at}; machine: {os.cpu_count()} CPUs (nproc), "
        f"{platform.platform()}, Python {platform.python_version()}; PostgreSQL "
        f"{run.pg_version} on 127.0.0.1, same machine"
    )
    la0, la1 = run.load_start, run.load_end
    add(
        f"- Machine load average (1/5/15 min): {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f} at the "
        f"start, {la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f} at the end; CPU pressure (share of "
        f"the last 60 s some task waited for a CPU): {run.pressure_start} at the start, "
        f"{run.pressure_end} at the end"
    )
    worker_line = (
        "one `python -m app.cli worker` precomputing bo/tpe suggestions"
        if run.worker_started
        else "no precompute worker (bo/tpe suggestions computed by the API)"
    )
    add(
        f"- Service: `python -m app.cli serve --workers {args.api_processes}` and {worker_line}; "
        f"pools {run.pool_size} + {run.max_overflow} overflow per API process"
        + (f", {WORKER_POOL} for the worker" if run.worker_started else "")
        + f": at most **{run.limit}** connections"
    )
    groups = ", ".join(
        f"{slot.algorithm} ({slot.workers} workers, concurrency {slot.concurrency})"
        for slot in run.slots
    )
    add(
        f"- Load: {args.workers} simulated workers (asyncio tasks in one process, "
        f"{'uvloop' if uvloop_present() else 'asyncio'} event loop; "
        f"{-(-args.workers // max(1, args.workers_per_client))} httpx.AsyncClients, one per "
        f"{args.workers_per_client} workers) for {args.warmup:g} s of warm-up (workers start "
        "within the first "
        f"{min(2.0, args.warmup):g} s) then {seconds:g} s measured. Groups: {groups}."
    )
    add(
        f"- Each worker: suggest (count 1) → {STEPS[0]}–{STEPS[1]} metric reports, each after "
        f"{STEP_SLEEP[0] * 1000:.0f}–{STEP_SLEEP[1] * 1000:.0f} ms of simulated training → "
        f"complete; an empty answer sleeps its retry_after (at most {MAX_BACKOFF:g} s); a "
        f"failed request {ERROR_PAUSE:g} s (or its Retry-After). A finished group is replaced "
        "by a fresh one with the same spec."
    )
    add("")

    add("## Summary\n")
    add("| figure | value |")
    add("|---|--:|")
    add(f"| requests/s achieved (answered, started in the window) | {achieved:,.1f} |")
    add(f"| offered load at zero service latency, requests/s | {offered:,.1f} |")
    if not math.isnan(offered):
        add(f"| achieved / offered | {achieved / offered:.0%} |")
    add(f"| trials completed/s | {sum(stats.completed_window.values()) / seconds:,.1f} |")
    add(
        f"| errors (non-2xx and transport), whole run / in the window | "
        f"**{all_errors}** / {window_errors} |"
    )
    add(f"| of which 503 with Retry-After (load shed) | {shed} |")
    mean_total = sum(conns.total) / len(conns.total) if conns.total else math.nan
    add(
        f"| database connections in use, max / mean (window), max (whole run) / limit | "
        f"{max(conns.total, default=0)} / {mean_total:.1f}, {conns.max_whole_run} / "
        f"**{run.limit}** |"
    )
    client_cpu = run.cpu.get("client")
    window = run.cpu.get("seconds") or seconds
    add(
        f"| client CPU in the window, s (cores) | {num(client_cpu)} "
        f"({num(None if client_cpu is None else client_cpu / window, 2)}) |"
    )
    if client_cpu is not None and total_window:
        add(f"| client CPU per request, ms | {client_cpu / total_window * 1000:.2f} |")
    lag = stats.loop_lag
    add(
        f"| client event-loop lag p50 / p99 / max, ms | {ms(percentile(lag, 0.5))} / "
        f"{ms(percentile(lag, 0.99))} / {ms(max(lag, default=math.nan))} |"
    )
    if worker_time:
        add(
            f"| worker time: waiting for the service / training / backing off | "
            f"{stats.waiting / worker_time:.0%} / {stats.training / worker_time:.0%} / "
            f"{stats.backoff / worker_time:.0%} |"
        )
    add("")
    add(
        "Offered load: the request rate the same workers would generate if every answer "
        "came back at once, i.e. the achieved rate scaled by worker time / time the workers "
        "spent sleeping (training or backing off). Worker time adds up every worker's time "
        "in the window. Event-loop lag: how late a 50 ms timer of the client fires; an answer "
        "that has arrived waits about that long before its worker reads it, so the workers' "
        "latencies below include it."
    )
    add("")

    add("## By route (requests started in the window)\n")
    add(
        "| route | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors (run) "
        "| service's p50 / p99 ms |"
    )
    add("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    errors_by_route = Counter()
    for (route, _, _), n in stats.errors.items():
        errors_by_route[route] += n
    for route in ROUTES:
        values = stats.latencies.get(route, [])
        if not values and not stats.sent.get(route):
            continue
        add(
            f"| {route} | {len(values):,} | {len(values) / seconds:,.1f} | "
            f"{ms(percentile(values, 0.5))} | {ms(percentile(values, 0.95))} | "
            f"{ms(percentile(values, 0.99))} | {ms(max(values, default=math.nan))} | "
            f"{errors_by_route[route]} | {server_side(run, route)} |"
        )
    every = [v for values in stats.latencies.values() for v in values]
    add(
        f"| all | {len(every):,} | {len(every) / seconds:,.1f} | {ms(percentile(every, 0.5))} | "
        f"{ms(percentile(every, 0.95))} | {ms(percentile(every, 0.99))} | "
        f"{ms(max(every, default=math.nan))} | {all_errors} | |"
    )
    add("")
    add(
        "Latency as the workers saw it, from sending the request to reading the answer, "
        "including any wait for a connection in the client and for the client's event loop. "
        "The service's p50 / p99: its own histogram (hpo_http_request_duration_seconds, "
        "from the first middleware in to the answer out) over the window, from /metrics "
        "scraped at its edges, interpolated within the histogram's buckets (… 0.5, 1, 2.5, "
        "5, 10, 30 s), so rough."
    )
    add("")

    add("## Errors\n")
    if not stats.errors:
        add("None: every request of the run (warm-up and drain included) was answered 2xx.\n")
    else:
        add("| route | kind | phase | count |")
        add("|---|---|---|--:|")
        for (route, kind, phase), n in sorted(stats.errors.items()):
            add(f"| {route} | {kind} | {phase} | {n} |")
        add("\nFirst answers:\n")
        for example in stats.examples:
            add(f"- {example}")
        add("")
    add("Requests sent by the client against the service's own count (hpo_http_requests_total):\n")
    add("| route | sent | answered (by status) | the service counted | difference |")
    add("|---|--:|---|--:|--:|")
    for route in ROUTES:
        if not stats.sent.get(route):
            continue
        method, template = SERVER_ROUTES[route]
        answered = {s: n for (r, s), n in stats.statuses.items() if r == route}
        server = sum(
            n for (m, t, _), n in run.server_counts.items() if m == method and t == template
        )
        by_status = ", ".join(f"{s or 'no answer'}: {n:,}" for s, n in sorted(answered.items()))
        # Group creation before the load is sent outside the recorded client: count it here.
        sent = stats.sent[route] + (len(run.slots) if route == CREATE else 0)
        add(f"| {route} | {sent:,} | {by_status} | {server:,.0f} | {server - sent:+,.0f} |")
    add("")
    if run.log_summary:
        add("The service's log lines at warning and above (and lines that are not JSON):\n")
        add("| log | level | event | count |")
        add("|---|---|---|--:|")
        for (log, level, event), n in sorted(run.log_summary.items()):
            add(f"| {log} | {level} | `{event}` | {n} |")
        add("")
    else:
        add("The servers' and the worker's logs hold no line at warning or above.\n")
    if run.log_expected:
        expected = ", ".join(f"`{e}` ×{n} ({log})" for (log, _, e), n in run.log_expected.items())
        add(f"Start-up warnings, logged on every start by design: {expected}.\n")

    add("## Database connections\n")
    add(
        f"Sampled every {args.sample_interval:g} s: pg_stat_activity of the run's database, by "
        "state (the sampler's own connection is to another database), and the established "
        "TCP connections to PostgreSQL's port held by each process (from /proc). "
        f"{len(conns.total)} samples in the window (the sampler runs on the client's event "
        "loop, so its lag spaces them out)."
    )
    add("")
    add("| what | max (window) | mean (window) | max (whole run) | limit |")
    add("|---|--:|--:|--:|--:|")
    add(
        f"| all connections to the database | {max(conns.total, default=0)} | {mean_total:.1f} | "
        f"{conns.max_whole_run} | {run.limit} |"
    )
    for state, values in sorted(conns.by_state.items()):
        add(
            f"| state `{state}` | {max(values, default=0)} | "
            f"{sum(values) / max(1, len(values)):.1f} | | |"
        )
    for key, values in sorted(conns.per_process.items()):
        limit = WORKER_POOL if key.startswith("worker") else run.api_limit
        add(
            f"| {key} | {max(values, default=0)} | {sum(values) / max(1, len(values)):.1f} | "
            f"{conns.max_per_process_whole_run.get(key, 0)} | {limit} |"
        )
    if conns.failures:
        add(f"\n{conns.failures} samples of pg_stat_activity failed.")
    add("")

    add("## By algorithm\n")
    add(
        "| algorithm | groups (replacements) | workers | trials completed in the window | "
        "trials/s | suggest p50 ms | suggest p99 ms | empty answers | completed (client, run) | "
        "succeeded (service) | running at the end |"
    )
    add("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for algorithm in ALGORITHMS:
        slots = [s for s in run.slots if s.algorithm == algorithm]
        views = [v for v in run.group_views.values() if v["_algorithm"] == algorithm]
        succeeded = sum(v.get("counts", {}).get("succeeded", 0) for v in views)
        running = sum(v.get("counts", {}).get("running", 0) for v in views)
        suggest = stats.suggest_by_algorithm.get(algorithm, [])
        add(
            f"| {algorithm} | {sum(len(s.group_ids) for s in slots)} "
            f"({stats.replaced[algorithm]}) | {sum(s.workers for s in slots)} | "
            f"{stats.completed_window[algorithm]:,} | "
            f"{stats.completed_window[algorithm] / seconds:,.1f} | "
            f"{ms(percentile(suggest, 0.5))} | {ms(percentile(suggest, 0.99))} | "
            f"{stats.empty[algorithm]:,} | {stats.completed[algorithm]:,} | {succeeded:,} | "
            f"{running} |"
        )
    add("")
    add(
        "Completed (client, run): completions answered 200 over the whole run; succeeded "
        "(service): the groups' own counts afterwards. A worker finishes the trial in hand "
        "before it stops, so a trial still running at the end was lost on the way (or left "
        "by a failed request)."
    )
    if stats.stopped_by_service or stats.abandoned:
        add(
            f"Trials the service told to stop: {dict(stats.stopped_by_service)}; trials left "
            f"running after a failed request: {dict(stats.abandoned)}."
        )
    finished = {f"{a} {s}": n for (a, s), n in stats.group_status_seen.items()}
    if finished:
        add(f"Groups that finished during the run (then replaced): {finished}.")
    add("")

    add("## CPU in the window\n")
    add("| process | CPU s | cores |")
    add("|---|--:|--:|")
    labels = {
        "client": "this load client (all workers)",
        "servers": f"hpo serve ({args.api_processes} processes and the supervisor)",
        "worker": "hpo worker",
        "postgres": "PostgreSQL (all processes)",
    }
    ours = 0.0
    for key, label in labels.items():
        value = run.cpu.get(key)
        if value is None:
            continue
        ours += value
        add(f"| {label} | {value:,.1f} | {value / window:.2f} |")
    machine = run.cpu.get("machine")
    if machine is not None:
        add(f"| everything else on the machine | {max(0.0, machine - ours):,.1f} | "
            f"{max(0.0, machine - ours) / window:.2f} |")  # fmt: skip
        add(f"| the machine | {machine:,.1f} | {machine / window:.2f} of {os.cpu_count()} |")
    add(f"\nThe client used {run.client_cpu_whole:,.1f} CPU s over the whole run.")
    add("")
    if run.notes:
        add("## Notes\n")
        for note in run.notes:
            add(f"- {note}")
        add("")
    if run.log_examples:
        add("## First log lines at warning and above\n")
        add("```")
        out.extend(run.log_examples)
        add("```")
        add("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the servers are stopped and the database dropped\n")
        sys.exit(130)

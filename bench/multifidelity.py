"""Multi-fidelity search on a real model: how many epochs each method needs for a good log-loss.

What it measures. A small neural network (scikit-learn's MLPClassifier, one hidden layer, Adam)
is tuned on the `digits` data set that ships with scikit-learn; the resource is the training
epoch (one `partial_fit` pass over the training split) and the objective is the log-loss on a
fixed, stratified 30 % validation split. Five methods search the same four-parameter space with
4 concurrent workers each, one after the other, for every seed:

* random search at full budget, served by hpo-engine (every configuration gets max_iter epochs);
* hpo-engine's synchronous Hyperband, promoted trials resuming from the parent's checkpoint;
* hpo-engine's asynchronous Hyperband (ASHA), same resumption;
* Optuna's HyperbandPruner and SuccessiveHalvingPruner, both with a RandomSampler, in-process
  (`study.optimize(n_jobs=4)`, in-memory storage).

The epoch budget E of a seed is what the synchronous Hyperband consumed (epochs actually
trained: a promotion trains only the epochs its parent had not). Random search gets
floor(E / max_iter) configurations; ASHA gets the number of configurations whose nominal cost
(each rung keeping 1/eta) is E and is stopped, like the Optuna studies, when E epochs have
been trained. A result is a model at the end of its trial (a completion of ours, a pruned, cut
or finished Optuna trial); the curve of a run is the best result so far against the epochs
trained so far by all its workers. From the curves it reports, over the seeds, the best
log-loss at the budget, the best log-loss at fixed epoch counts, the epochs each method needs
to reach the final log-loss of the seed's random search, and, for our service, how long the
workers sat idle waiting for a suggestion.

hpo-engine runs as `python -m app.cli serve --workers 2` on a fresh database of the local
PostgreSQL (postgres@127.0.0.1:5432), dropped at the end, also on failure. Workers are threads
of this process, one httpx.Client each, asking for one trial at a time and, after an empty
answer, again 250 ms later; checkpoints are deep copies of the model, kept here by trial id.
Everything talks to 127.0.0.1 only.

Run from the repository root; five seeds took six to nine minutes on two cores that other jobs
were also using (1-minute load average 6 to 13):

    .venv/bin/python bench/multifidelity.py [--seeds 5] [--out bench/results/multifidelity.md]
        [--max-iter 27] [--eta 3]
"""

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import optuna
import psycopg
import sklearn
from psycopg import sql
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"

WORKERS = 4
METRIC = "val_loss"
RESOURCE = "epochs"
LEASE_SECONDS = 600
# Workers ask without a long poll and, when nothing is free, ask again this much later (the
# server's own long poll looks again at the same pace). A long poll that waits and then gets a
# trial would hide its wait inside a successful call; this way every idle moment is measured.
POLL_SECONDS = 0.25
SERVER_START_TIMEOUT = 90.0
RUN_TIMEOUT = 600.0  # seconds one search may take before the bench gives up
MAX_SUGGESTION_CALLS = 5_000  # per worker and search
WORST_PROBABILITY = 1e-15  # a predicted probability below this is taken as this
FINISHED = frozenset({"done", "stopped", "failed"})
LEVELS = (0.2, 0.15, 0.12, 0.1, 0.09, 0.08)  # fixed log-loss levels for the time-to-level table

RANDOM = "random search (ours)"
HYPERBAND = "Hyperband (ours)"
ASHA = "ASHA (ours)"
OPTUNA_HB = "Optuna HyperbandPruner"
OPTUNA_SHA = "Optuna SuccessiveHalvingPruner"
SYSTEMS = (RANDOM, HYPERBAND, ASHA, OPTUNA_HB, OPTUNA_SHA)
OURS = (HYPERBAND, ASHA)


# --------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class LogUniform:
    """exp(U(low, high)): the bounds are natural logarithms, as in a Polyaxon matrix."""

    name: str
    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    """One of a few values, each as likely."""

    name: str
    options: tuple[int, ...]


SPACE: tuple[LogUniform | Choice, ...] = (
    LogUniform("learning_rate_init", math.log(1e-5), 0.0),
    LogUniform("alpha", math.log(1e-7), math.log(1e-1)),
    Choice("hidden_units", (16, 32, 64, 128)),
    Choice("batch_size", (64, 128, 256)),
)


def service_matrix() -> dict[str, Any]:
    """The space as the `matrix` of an hptuning section."""
    matrix: dict[str, Any] = {}
    for p in SPACE:
        if isinstance(p, LogUniform):
            matrix[p.name] = {"loguniform": [p.low, p.high]}
        else:
            matrix[p.name] = {"values": list(p.options)}
    return matrix


def optuna_params(trial: optuna.Trial) -> dict[str, Any]:
    """The same space drawn through Optuna's suggest API."""
    params: dict[str, Any] = {}
    for p in SPACE:
        if isinstance(p, LogUniform):
            params[p.name] = trial.suggest_float(
                p.name, math.exp(p.low), math.exp(p.high), log=True
            )
        else:
            params[p.name] = trial.suggest_categorical(p.name, list(p.options))
    return params


def describe_space() -> str:
    parts = []
    for p in SPACE:
        if isinstance(p, LogUniform):
            parts.append(f"`{p.name}` log-uniform in [{math.exp(p.low):.0e}, {math.exp(p.high):g}]")
        else:
            parts.append(f"`{p.name}` in {{{', '.join(str(v) for v in p.options)}}}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: np.ndarray


def load_split() -> Split:
    """`digits`, standardised on the training part, 70/30 stratified with a fixed state."""
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=20240601
    )
    scaler = StandardScaler().fit(x_train)
    return Split(
        x_train=scaler.transform(x_train),
        y_train=y_train,
        x_val=scaler.transform(x_val),
        y_val=y_val,
        classes=np.unique(y),
    )


def model_seed(seed: int, params: dict[str, Any]) -> int:
    """The model's randomness as a function of the bench seed and the configuration."""
    key = json.dumps([seed, {k: params[k] for k in sorted(params)}], sort_keys=True)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


@dataclass
class Model:
    """A network and how many epochs it has had; epoch e is a function of (seed, params, e)."""

    net: MLPClassifier
    seed: int
    epochs: int = 0


def fresh_model(seed: int, params: dict[str, Any]) -> Model:
    net = MLPClassifier(
        hidden_layer_sizes=(int(params["hidden_units"]),),
        alpha=float(params["alpha"]),
        learning_rate_init=float(params["learning_rate_init"]),
        batch_size=int(params["batch_size"]),
        random_state=model_seed(seed, params) % (2**31),
    )
    return Model(net=net, seed=model_seed(seed, params))


def train_epoch(model: Model, data: Split) -> None:
    """One pass over the training split, in an order drawn from (model seed, epoch)."""
    # MLPClassifier re-seeds its own shuffle on every partial_fit call, so without this the
    # batches would come in the same order every epoch.
    order = np.random.default_rng([model.seed, model.epochs]).permutation(len(data.y_train))
    with np.errstate(all="ignore"):
        model.net.partial_fit(data.x_train[order], data.y_train[order], classes=data.classes)
    model.epochs += 1


def validation_loss(model: Model, data: Split) -> float:
    """Mean negative log-probability of the true class on the validation split."""
    with np.errstate(all="ignore"):
        proba = model.net.predict_proba(data.x_val)
    index = np.searchsorted(model.net.classes_, data.y_val)
    p_true = proba[np.arange(len(data.y_val)), index]
    # A diverged network predicts NaN: count it as the worst probability.
    p_true = np.where(np.isfinite(p_true), p_true, 0.0)
    return float(-np.mean(np.log(np.clip(p_true, WORST_PROBABILITY, 1.0))))


# --------------------------------------------------------------------------- budgets


def hyperband_rungs(max_iter: int, eta: int) -> list[list[tuple[int, int]]]:
    """Canonical Hyperband: per bracket, the (trials, resource) of each rung."""
    s_max = 0
    while eta ** (s_max + 1) <= max_iter:
        s_max += 1
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil(Fraction((s_max + 1) * eta**s, s + 1))
        brackets.append(
            [(n // eta**k, int(Fraction(max_iter * eta**k, eta**s))) for k in range(s + 1)]
        )
    return brackets


def resumed_epochs(rungs: Sequence[tuple[int, int]]) -> int:
    """Epochs one bracket trains when each promotion continues its parent."""
    total, below = 0, 0
    for size, resource in rungs:
        total += size * (resource - below)
        below = resource
    return total


def asha_configs_for(budget: int, max_iter: int, eta: int) -> int:
    """The fewest configurations whose nominal ASHA cost (a third promoted per rung) is budget."""
    top = hyperband_rungs(max_iter, eta)[0]
    resources = [r for _, r in top]

    def cost(n: int) -> int:
        return resumed_epochs([(n // eta**k, r) for k, r in enumerate(resources)])

    n = 1
    while cost(n) < budget:
        n += 1
    return n


# --------------------------------------------------------------------------- bookkeeping


class EpochMeter:
    """Counts the epochs a search trains, optionally up to a cap, and its results in order."""

    def __init__(self, cap: int | None = None) -> None:
        self._lock = threading.Lock()
        self.cap = cap
        self.consumed = 0
        self.curve: list[tuple[int, float]] = []

    def take(self) -> bool:
        """Claim one epoch; False when the cap is reached."""
        with self._lock:
            if self.cap is not None and self.consumed >= self.cap:
                return False
            self.consumed += 1
            return True

    def record(self, value: float) -> None:
        with self._lock:
            self.curve.append((self.consumed, value))

    @property
    def spent(self) -> bool:
        with self._lock:
            return self.cap is not None and self.consumed >= self.cap


@dataclass
class WorkerTimes:
    """Where one of our workers spent its time."""

    train: float = 0.0  # training, evaluating and keeping the model
    report: float = 0.0  # metric reports, completions (and the one stop call)
    idle: list[tuple[float, float]] = field(default_factory=list)  # empty suggestion calls
    handed: list[tuple[float, float]] = field(default_factory=list)  # calls that gave a trial
    fresh_handouts: list[float] = field(default_factory=list)  # when a new config arrived


@dataclass
class Run:
    """One search of one system for one seed."""

    system: str
    seed: int
    curve: list[tuple[int, float]]
    epochs: int
    configs: int
    trials: int
    wall: float
    capped: bool = False
    # Our service only. Shares are of 4 x wall; "early" = before the last new configuration
    # was handed out, when the algorithm still had fresh work it could have given.
    idle_share: float | None = None  # in suggestion calls that gave nothing
    idle_early_share: float | None = None
    train_share: float | None = None
    report_share: float | None = None
    handed_share: float | None = None  # in suggestion calls that gave a trial
    handed_median: float | None = None  # seconds, the median such call
    slowest_handout: float | None = None  # seconds, the longest such call
    idle_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def final(self) -> float:
        return min(v for _, v in self.curve)


def best_by(curve: Sequence[tuple[int, float]], epochs: int) -> float | None:
    values = [v for e, v in curve if e <= epochs]
    return min(values) if values else None


def epochs_to_reach(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    for e, v in curve:
        if v <= target:
            return e
    return None


# --------------------------------------------------------------------------- PostgreSQL and server


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"bench_mf_{os.getpid()}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(drop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


@contextmanager
def running_service(db: str) -> Iterator[str]:
    """hpo-engine with 2 server processes on a free loopback port; yields its base URL."""
    port = free_port()
    python = ROOT / ".venv" / "bin" / "python"
    cmd = [str(python if python.exists() else sys.executable), "-m", "app.cli", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    env = os.environ | {"HPO_DATABASE_URL": PG_URL.format(db=db), "HPO_LOG_LEVEL": "WARNING"}
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}:\n{_tail(log)}")
                try:
                    if httpx.get(base + "/readyz", timeout=2.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server was not ready in time:\n{_tail(log)}")
                time.sleep(0.2)
            yield base
        finally:
            # The server runs in a session of its own, so its group is exactly what we started.
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


class ServiceError(RuntimeError):
    """The service answered something the bench did not expect."""


def call(
    client: httpx.Client, path: str, body: dict[str, Any] | None = None, ok: Sequence[int] = (200,)
) -> tuple[int, Any]:
    response = client.post(path, json=body) if body is not None else client.get(path)
    if response.status_code not in ok:
        sent = f"GET {path}" if body is None else f"POST {path} {json.dumps(body)}"
        raise ServiceError(f"{sent} -> {response.status_code} {response.text[:1000]}")
    return response.status_code, response.json() if response.content else None


# --------------------------------------------------------------------------- our service


@dataclass
class Checkpoint:
    model: Model
    params: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A trial as one of our workers ended it."""

    id: int
    bracket: int | None
    rung: int | None
    parent: int | None
    value: float
    cut: bool


def check_sync_promotions(done: Sequence[Finished]) -> list[str]:
    """Synchronous Hyperband must continue the best trials of each rung, and only those."""
    cells: dict[tuple[int, int], list[Finished]] = {}
    for t in done:
        if t.bracket is not None and t.rung is not None:
            cells.setdefault((t.bracket, t.rung), []).append(t)
    problems = []
    for (bracket, rung), trials in sorted(cells.items()):
        if rung == 0:
            continue
        parents = {t.parent for t in trials}
        below = sorted(cells.get((bracket, rung - 1), []), key=lambda t: (t.value, t.id))
        best = {t.id for t in below[: len(parents)]}
        if parents != best:
            problems.append(
                f"bracket {bracket} rung {rung} continued trials {sorted(parents, key=str)}, "
                f"but the best {len(parents)} of rung {rung - 1} are {sorted(best)}"
            )
    return problems


@dataclass
class GroupRun:
    """What the workers of one group share."""

    base: str
    group_id: int
    seed: int
    max_iter: int
    data: Split
    meter: EpochMeter
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    abort: threading.Event = field(default_factory=threading.Event)
    stop_sent: bool = False
    notes: list[str] = field(default_factory=list)
    trials: int = 0
    fresh: int = 0
    done: list[Finished] = field(default_factory=list)

    def note(self, text: str) -> None:
        with self.lock:
            if text not in self.notes:
                self.notes.append(text)


def train_trial(run: GroupRun, client: httpx.Client, trial: dict[str, Any]) -> float:
    """Train one handed-out trial, keep its checkpoint, report and complete it.

    Returns the seconds spent in calls to the service.
    """
    spent = 0.0

    def timed(path: str, body: dict[str, Any], ok: Sequence[int]) -> None:
        nonlocal spent
        t0 = time.monotonic()
        call(client, path, body, ok)
        spent += time.monotonic() - t0

    tid = trial["id"]
    params = {k: v for k, v in trial["params"].items() if k != RESOURCE}
    target = run.max_iter if trial.get("resource") is None else int(trial["resource"])
    parent = trial.get("resume_from")
    model: Model | None = None
    if parent is not None and trial.get("resume"):
        with run.lock:
            saved = run.checkpoints.get(parent)
        if saved is None:
            run.note(f"trial {tid} resumes from trial {parent}, which no worker completed")
        else:
            if saved.params != params:
                run.note(f"trial {tid} resumes trial {parent} with other params")
            model = copy.deepcopy(saved.model)
    if model is None:
        model = fresh_model(run.seed, params)
    if target <= model.epochs:
        run.note(f"trial {tid}: resource {target} is not above its parent's {model.epochs}")
    start = model.epochs
    while model.epochs < target and run.meter.take():
        train_epoch(model, run.data)
    cut = model.epochs < target
    if cut and model.epochs == start:
        # The budget ran out before this trial trained at all: no new result.
        timed(f"/api/v1/trials/{tid}/complete", {"status": "stopped"}, (200, 409))
    else:
        value = validation_loss(model, run.data)
        with run.lock:
            run.checkpoints[tid] = Checkpoint(model=model, params=params)
            run.trials += 1
            run.fresh += parent is None
            run.done.append(
                Finished(tid, trial.get("bracket"), trial.get("rung"), parent, value, cut)
            )
        run.meter.record(value)
        # A trial cut by the budget cap is reported as stopped; the group is being stopped, so
        # the service may already have closed it (409).
        ok = (200, 409) if cut else (200,)
        values = {METRIC: value}
        step = {"values": values, "step": model.epochs}
        timed(f"/api/v1/trials/{tid}/metrics", step, ok)
        status = "stopped" if cut else "succeeded"
        timed(f"/api/v1/trials/{tid}/complete", {"status": status, "values": values}, ok)
    if cut:
        with run.lock:
            send, run.stop_sent = not run.stop_sent, True
        if send:
            # 409 when that completion was the group's last trial and it is done already.
            timed(f"/api/v1/groups/{run.group_id}/stop", {}, (200, 409))
    return spent


def group_worker(run: GroupRun, name: str, times: WorkerTimes) -> None:
    """suggest -> train -> report -> complete until the group is over."""
    body = {"count": 1, "worker_id": name, "wait_seconds": 0}
    path = f"/api/v1/groups/{run.group_id}/suggestions"
    try:
        with httpx.Client(base_url=run.base, timeout=60.0) as client:
            for _ in range(MAX_SUGGESTION_CALLS):
                if run.abort.is_set():
                    return
                if time.monotonic() > run.deadline:
                    raise TimeoutError(f"{name}: the group did not finish in {RUN_TIMEOUT:.0f} s")
                t0 = time.monotonic()
                _, answer = call(client, path, body)
                t1 = time.monotonic()
                if not answer["trials"]:
                    times.idle.append((t0, t1))
                    if answer["group_status"] in FINISHED:
                        return
                    time.sleep(min(float(answer.get("retry_after") or POLL_SECONDS), POLL_SECONDS))
                    times.idle.append((t1, time.monotonic()))
                    continue
                times.handed.append((t0, t1))
                for trial in answer["trials"]:
                    if trial.get("resume_from") is None:
                        times.fresh_handouts.append(t1)
                    t2 = time.monotonic()
                    in_calls = train_trial(run, client, trial)
                    times.report += in_calls
                    times.train += time.monotonic() - t2 - in_calls
            raise RuntimeError(f"{name}: {MAX_SUGGESTION_CALLS} suggestion calls, group not over")
    except BaseException:
        run.abort.set()
        raise


def seconds_in(intervals: Sequence[tuple[float, float]], until: float) -> tuple[float, float]:
    """Seconds covered by the intervals in all, and before `until`."""
    total = sum(b - a for a, b in intervals)
    early = sum(max(0.0, min(b, until) - a) for a, b in intervals)
    return total, early


def run_group(
    base: str,
    system: str,
    seed: int,
    group_seed: int,
    hptuning: dict[str, Any],
    objective: dict[str, Any] | None,
    data: Split,
    max_iter: int,
    cap: int | None = None,
    check_promotions: bool = False,
) -> Run:
    body: dict[str, Any] = {"hptuning": hptuning, "lease_seconds": LEASE_SECONDS}
    if objective is not None:
        body["objective"] = objective
    body["hptuning"]["seed"] = group_seed
    with httpx.Client(base_url=base, timeout=60.0) as client:
        _, group = call(client, "/api/v1/groups", body, ok=(201,))
    meter = EpochMeter(cap)
    start = time.monotonic()
    run = GroupRun(
        base=base,
        group_id=group["id"],
        seed=seed,
        max_iter=max_iter,
        data=data,
        meter=meter,
        deadline=start + RUN_TIMEOUT,
    )
    times = [WorkerTimes() for _ in range(WORKERS)]
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            group_worker(run, f"w{i}", times[i])
        except BaseException as exc:  # re-raised below, in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RUN_TIMEOUT + 60)
    end = time.monotonic()
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        run.abort.set()
        raise TimeoutError(f"{system} seed {seed}: workers still running")
    # A worker gone home while others still trained was idle until the end too.
    for w in times:
        last = max([b for _, b in w.idle] + [start])
        if end - last > 0.01:
            w.idle.append((last, end))

    with httpx.Client(base_url=base, timeout=60.0) as client:
        _, view = call(client, f"/api/v1/groups/{run.group_id}")
    expected = ("stopped", "done") if run.stop_sent else ("done",)
    if view["status"] not in expected:
        run.note(f"group {run.group_id} ended as {view['status']!r}, expected {expected[0]!r}")
    if view["counts"].get("failed") or view["counts"].get("expired"):
        run.note(f"group {run.group_id} counts {view['counts']}")
    best = (view.get("best_trial") or {}).get("objective")
    ours = min((v for _, v in meter.curve), default=None)
    if best is not None and ours is not None and not run.stop_sent and abs(best - ours) > 1e-9:
        run.note(f"group {run.group_id}: best_trial objective {best} but best completion {ours}")
    if check_promotions:
        for problem in check_sync_promotions(run.done):
            run.note(f"group {run.group_id}: {problem}")
    last_fresh = max((t for w in times for t in w.fresh_handouts), default=start)
    idle, idle_early = seconds_in([i for w in times for i in w.idle], last_fresh)
    handed, _ = seconds_in([i for w in times for i in w.handed], last_fresh)
    answers = [b - a for w in times for a, b in w.handed]
    wall = end - start
    worker_seconds = WORKERS * wall
    return Run(
        system=system,
        seed=seed,
        curve=list(meter.curve),
        epochs=meter.consumed,
        configs=run.fresh,
        trials=run.trials,
        wall=wall,
        capped=run.stop_sent,
        idle_share=idle / worker_seconds,
        idle_early_share=idle_early / worker_seconds,
        train_share=sum(w.train for w in times) / worker_seconds,
        report_share=sum(w.report for w in times) / worker_seconds,
        handed_share=handed / worker_seconds,
        handed_median=statistics.median(answers) if answers else 0.0,
        slowest_handout=max(answers, default=0.0),
        idle_seconds=idle,
        notes=run.notes,
    )


def hyperband_spec(max_iter: int, eta: int, asynchronous: bool, n: int | None) -> dict[str, Any]:
    hyperband: dict[str, Any] = {
        "max_iter": max_iter,
        "eta": eta,
        "resource": {"name": RESOURCE, "type": "int"},
        "metric": {"name": METRIC, "optimization": "minimize"},
        "resume": True,
        "asynchronous": asynchronous,
    }
    if n is not None:
        hyperband["n_experiments"] = n
    return {"concurrency": WORKERS, "hyperband": hyperband, "matrix": service_matrix()}


# --------------------------------------------------------------------------- Optuna


def run_optuna(
    system: str, seed: int, sampler_seed: int, data: Split, max_iter: int, eta: int, budget: int
) -> Run:
    """A study with 4 threads that stops once `budget` epochs have been trained."""
    if system == OPTUNA_HB:
        pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_iter, reduction_factor=eta
        )
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=sampler_seed),
        pruner=pruner,
    )
    meter = EpochMeter(budget)
    counted = {"configs": 0, "trials": 0}
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        params = optuna_params(trial)
        model = fresh_model(seed, params)
        value: float | None = None
        while model.epochs < max_iter and meter.take():
            train_epoch(model, data)
            value = validation_loss(model, data)
            trial.report(value, model.epochs)
            if trial.should_prune():
                break
        if value is None:  # the budget was gone before its first epoch
            raise optuna.TrialPruned()
        meter.record(value)
        with lock:
            counted["configs"] += 1
            counted["trials"] += 1
        if model.epochs < max_iter and not meter.spent:
            raise optuna.TrialPruned()
        return value

    def stop_when_spent(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if meter.spent:
            study.stop()

    start = time.monotonic()
    study.optimize(
        objective,
        n_trials=budget + 10 * WORKERS,
        n_jobs=WORKERS,
        timeout=RUN_TIMEOUT,
        callbacks=[stop_when_spent],
        catch=(),
    )
    wall = time.monotonic() - start
    return Run(
        system=system,
        seed=seed,
        curve=list(meter.curve),
        epochs=meter.consumed,
        configs=counted["configs"],
        trials=counted["trials"],
        wall=wall,
        capped=meter.spent,
    )


# --------------------------------------------------------------------------- the report


def fmt_loss(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.4f}"


def fmt_epochs(v: float | None) -> str:
    return "not reached" if v is None or not math.isfinite(v) else f"{v:.0f}"


def fmt_ratio(v: float | None) -> str:
    return "not reached" if v is None or not math.isfinite(v) else f"{v:.2f}"


def spread(values: Sequence[float], fmt: Callable[[float | None], str]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    med = statistics.median(values)
    if not finite:
        return fmt(med)
    lo, hi = min(values), max(values)
    return f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"


@dataclass
class Setup:
    max_iter: int
    eta: int
    seeds: list[int]
    planned_budget: int
    asha_configs: int
    command: str
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    cpu: float = 0.0  # CPU seconds of this process (training, clients, Optuna)


def render(runs: list[Run], setup: Setup, elapsed: float) -> str:
    by = {(r.system, r.seed): r for r in runs}
    seeds = setup.seeds
    budgets = {s: by[(HYPERBAND, s)].epochs for s in seeds}
    targets = {s: by[(RANDOM, s)].final for s in seeds}
    random_epochs = {s: by[(RANDOM, s)].epochs for s in seeds}

    def reach(system: str, s: int) -> float:
        e = epochs_to_reach(by[(system, s)].curve, targets[s])
        return math.inf if e is None else float(e)

    lines: list[str] = []
    add = lines.append
    add("# Multi-fidelity search: epochs to a good validation log-loss")
    add("")
    add(f"- Command: `{setup.command}`")
    add(f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; total run time {elapsed:.0f} s")
    add(
        f"- Machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), "
        f"{platform.platform()}, Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}, Optuna {optuna.__version__}, numpy {np.__version__}; "
        f"1-minute load average {setup.load[0]:.1f} at the start, {setup.load[1]:.1f} at the end; "
        f"{setup.cpu:.0f} CPU s in the bench process"
    )
    add(
        "- Task: `MLPClassifier` (one hidden layer, Adam) on scikit-learn's `digits`, "
        "standardised, 70/30 stratified split (1257 train, 540 validation); one epoch = one "
        "`partial_fit` pass; objective = validation log-loss (lower is better)."
    )
    add(f"- Space (same for all): {describe_space()}.")
    add(
        f"- Resource: epochs, max_iter R = {setup.max_iter}, eta = {setup.eta}; "
        f"{WORKERS} concurrent workers per search (threads); seeds {', '.join(map(str, seeds))}."
    )
    add(
        f"- Budget per seed: E = epochs our synchronous Hyperband trained "
        f"(planned {setup.planned_budget}; measured {sorted(set(budgets.values()))}). "
        f"Random search: floor(E/R) = {setup.planned_budget // setup.max_iter} configurations "
        f"x R epochs. ASHA: n_experiments = {setup.asha_configs} (nominal cost E), stopped at E "
        "epochs if it gets there. Optuna: RandomSampler, `n_jobs=4`, stopped at E epochs."
    )
    add(
        "- A result is a model at the end of a trial (our completions; Optuna's pruned, "
        "finished or budget-cut trials). Epochs are counted across all workers at the moment "
        "the result is known, so work in flight counts."
    )
    add(
        "- Repeatability: each search of ours draws configuration j as a function of (seed, j) "
        "and trains a configuration the same way wherever it runs, so random search and "
        "synchronous Hyperband reach the same log-losses on every run (the epoch count at "
        "which a result comes in moves a little, as work in flight is counted); ASHA's "
        "promotions and both Optuna studies depend on the order in which the 4 workers finish "
        "(Optuna's 4 threads also share one sampler), so their figures move between runs of "
        "the same seed."
    )
    add("")
    add("## Summary over seeds (median, min–max in brackets)")
    add("")
    add(
        "| system | new configs | epochs trained | best log-loss at the end | "
        "epochs to random's final log-loss | reached | ratio to random's epochs |"
    )
    add("|---|---|---|---|---|---|---|")
    summary: dict[str, dict[str, Any]] = {}
    for system in SYSTEMS:
        rs = [by[(system, s)] for s in seeds]
        reached = [reach(system, s) for s in seeds]
        ratios = [reached[i] / random_epochs[s] for i, s in enumerate(seeds)]
        summary[system] = {"reach": reached, "ratio": ratios}
        add(
            f"| {system} | {statistics.median(r.configs for r in rs):.0f} "
            f"| {spread([float(r.epochs) for r in rs], fmt_epochs)} "
            f"| {spread([r.final for r in rs], fmt_loss)} "
            f"| {spread(reached, fmt_epochs)} "
            f"| {sum(math.isfinite(v) for v in reached)}/{len(seeds)} "
            f"| {spread(ratios, fmt_ratio)} |"
        )
    add("")
    add(
        "Ratio to random's epochs: epochs to reach random search's final log-loss of the same "
        "seed, divided by all the epochs random search trained for that seed."
    )
    finals = [targets[s] for s in seeds]
    draws = min(r.configs for r in runs if r.system == RANDOM)
    add("")
    add(
        f"Random search's final log-loss is the best of only {draws} full-budget draws, "
        f"so it moves a lot from seed to seed (here {min(finals):.4f} to "
        f"{max(finals):.4f}); the targets below inherit that spread. The table of fixed "
        "log-loss levels further down does not."
    )
    add("")
    add("## Targets")
    add("")
    third = [random_epochs[s] / 3 for s in seeds]
    # Stricter: a third of the epochs random search had trained when its best result came in.
    own_third = [v / 3 for v in summary[RANDOM]["reach"]]
    for system in OURS:
        reach_ours = summary[system]["reach"]
        med = statistics.median(reach_ours)
        each = sum(reach_ours[i] <= third[i] for i in range(len(seeds)))
        strict = sum(reach_ours[i] <= own_third[i] for i in range(len(seeds)))
        verdict = "met" if med <= statistics.median(third) else "NOT met"
        add(
            f"- {system} reaches random search's final log-loss within a third of random "
            f"search's epochs: **{verdict}** (median {fmt_epochs(med)} epochs against "
            f"{statistics.median(third):.0f}; within a third in {each}/{len(seeds)} seeds; "
            f"within a third of the epochs random search had trained when its best result "
            f"arrived in {strict}/{len(seeds)} seeds)."
        )
    for system in OURS:
        med = statistics.median(summary[system]["reach"])
        for other in (OPTUNA_HB, OPTUNA_SHA):
            theirs = statistics.median(summary[other]["reach"])
            verdict = "met" if med <= theirs else "NOT met"
            add(
                f"- {system} needs no more epochs than {other}: **{verdict}** "
                f"(median {fmt_epochs(med)} against {fmt_epochs(theirs)})."
            )
    asha = [by[(ASHA, s)] for s in seeds]
    worst = max(r.idle_early_share or 0.0 for r in asha)
    verdict = "met" if worst <= 0.05 else "NOT met"
    add(
        f"- ASHA keeps all {WORKERS} workers busy (no more than 5 % of worker time in empty "
        "suggestion answers while new configurations remained, in every seed): "
        f"**{verdict}** (worst seed {worst:.1%}; idle over the whole run, tail included, median "
        f"{statistics.median(r.idle_share or 0.0 for r in asha):.1%} against "
        f"{statistics.median(by[(HYPERBAND, s)].idle_share or 0.0 for s in seeds):.1%} for "
        "synchronous Hyperband; suggestions that gave a trial took a median "
        f"{statistics.median(r.handed_share or 0.0 for r in asha):.1%} of ASHA's worker time, "
        f"training {statistics.median(r.train_share or 0.0 for r in asha):.1%})."
    )

    add("")
    add(f"## Worker time of our service ({WORKERS} workers; median over seeds, max in brackets)")
    add("")
    add(
        "| system | wall s | training | reporting | suggestions that gave a trial | "
        "median answer, ms | slowest answer, ms | idle | idle before the last new config |"
    )
    add("|---|---|---|---|---|---|---|---|---|")

    def med_max(values: Sequence[float], fmt: str = "{:.1%}") -> str:
        return f"{fmt.format(statistics.median(values))} ({fmt.format(max(values))})"

    for system in (RANDOM, HYPERBAND, ASHA):
        rs = [by[(system, s)] for s in seeds]
        add(
            f"| {system} | {statistics.median(r.wall for r in rs):.1f} "
            f"| {statistics.median(r.train_share or 0.0 for r in rs):.1%} "
            f"| {statistics.median(r.report_share or 0.0 for r in rs):.1%} "
            f"| {statistics.median(r.handed_share or 0.0 for r in rs):.1%} "
            f"| {med_max([1000 * (r.handed_median or 0.0) for r in rs], '{:.0f}')} "
            f"| {med_max([1000 * (r.slowest_handout or 0.0) for r in rs], '{:.0f}')} "
            f"| {med_max([r.idle_share or 0.0 for r in rs])} "
            f"| {med_max([r.idle_early_share or 0.0 for r in rs])} |"
        )
    add("")
    add(
        f"Shares of {WORKERS} x wall time. Training: partial_fit, evaluation and checkpoint "
        "copies. Reporting: the metric and completion calls. Suggestions that gave a trial: "
        "the service's answer time. Idle: suggestion calls that came back without a trial, "
        f"the {1000 * POLL_SECONDS:.0f} ms pause before asking again, and a worker gone home "
        "while others still trained. 'Before the last new "
        "config': up to the moment the last fresh configuration was handed out, while the "
        "algorithm still had new work to give; the rest is the run's tail."
    )

    marks = sorted(
        {
            setup.max_iter,
            2 * setup.max_iter,
            3 * setup.max_iter,
            round(statistics.median(random_epochs.values()) / 3),
            setup.planned_budget // 2,
            (3 * setup.planned_budget) // 4,
            setup.planned_budget,
        }
    )
    add("")
    add("## Best validation log-loss against epochs trained (median over seeds)")
    add("")
    add("| system | " + " | ".join(f"{m} epochs" for m in marks) + " |")
    add("|---|" + "---|" * len(marks))
    for system in SYSTEMS:
        cells = []
        for m in marks:
            values = [best_by(by[(system, s)].curve, m) for s in seeds]
            if sum(v is not None for v in values) * 2 <= len(values):
                cells.append("—")
            else:
                cells.append(
                    fmt_loss(statistics.median(math.inf if v is None else v for v in values))
                )
        add(f"| {system} | " + " | ".join(cells) + " |")
    add("")
    add("— : no result yet in at least half the seeds.")

    add("")
    add("## Epochs to reach a fixed validation log-loss (median over seeds)")
    add("")
    add("| system | " + " | ".join(f"≤ {level}" for level in LEVELS) + " |")
    add("|---|" + "---|" * len(LEVELS))
    for system in SYSTEMS:
        cells = []
        for level in LEVELS:
            hits = [epochs_to_reach(by[(system, s)].curve, level) for s in seeds]
            med = statistics.median(math.inf if e is None else float(e) for e in hits)
            cells.append(f"{fmt_epochs(med)} ({sum(e is not None for e in hits)}/{len(seeds)})")
        add(f"| {system} | " + " | ".join(cells) + " |")
    add("")
    add(
        "In brackets: seeds that got there at all. Unlike random search's final log-loss, "
        "these levels do not move with the luck of one random-search run."
    )

    add("")
    add("## Per seed: epochs to reach random search's final log-loss")
    add("")
    add("| seed | random's final | " + " | ".join(SYSTEMS) + " |")
    add("|---|---|" + "---|" * len(SYSTEMS))
    for s in seeds:
        cells = [fmt_epochs(reach(system, s)) for system in SYSTEMS]
        add(f"| {s} | {fmt_loss(targets[s])} | " + " | ".join(cells) + " |")

    add("")
    add("## Per seed: wall time and workers (ours)")
    add("")
    add(
        "| seed | system | wall s | trials | training | suggestions that gave a trial "
        "| idle s | idle | idle before the last new config |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for s in seeds:
        for system in SYSTEMS:
            r = by[(system, s)]
            if r.idle_share is None:
                add(f"| {s} | {system} | {r.wall:.1f} | {r.trials} | — | — | — | — | — |")
            else:
                add(
                    f"| {s} | {system} | {r.wall:.1f} | {r.trials} | {r.train_share:.1%} "
                    f"| {r.handed_share:.1%} | {r.idle_seconds:.1f} | {r.idle_share:.1%} "
                    f"| {r.idle_early_share:.1%} |"
                )

    notes = [f"{r.system}, seed {r.seed}: {n}" for r in runs for n in r.notes]
    capped = [r for r in runs if r.capped and r.system == ASHA]
    add("")
    add("## Notes")
    add("")
    if capped:
        add(
            f"- ASHA was stopped at the budget in seeds {', '.join(str(r.seed) for r in capped)}, "
            f"having drawn {min(r.configs for r in capped)}–{max(r.configs for r in capped)} of "
            f"its {setup.asha_configs} configurations (its extra promotions cost more than the "
            "nominal 1/eta per rung)."
        )
    for n in notes:
        add(f"- {n}")
    if not notes:
        add(
            "- No anomaly seen in the service: every group ended as expected, synchronous "
            "Hyperband continued exactly the best trials of each rung and trained the planned "
            "epochs, and the best trial of every group that ran to its end matched the best "
            "value reported to it."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def run_seed(base: str, seed: int, data: Split, max_iter: int, eta: int) -> list[Run]:
    runs: list[Run] = []

    def done(run: Run) -> Run:
        runs.append(run)
        print(
            f"seed {seed} {run.system:32s} best {run.final:.4f} epochs {run.epochs:4d} "
            f"configs {run.configs:3d} wall {run.wall:5.1f} s"
            + (f" idle {run.idle_share:.1%}" if run.idle_share is not None else ""),
            file=sys.stderr,
            flush=True,
        )
        return run

    # Each system draws from its own stream; a configuration trains the same way in all of them.
    def stream(system: str) -> int:
        return seed * 100 + SYSTEMS.index(system)

    objective = {"name": METRIC, "optimization": "minimize"}
    hb = done(
        run_group(
            base,
            HYPERBAND,
            seed,
            stream(HYPERBAND),
            hyperband_spec(max_iter, eta, False, None),
            None,
            data,
            max_iter,
            check_promotions=True,
        )
    )
    budget = hb.epochs
    planned = sum(resumed_epochs(b) for b in hyperband_rungs(max_iter, eta))
    if budget != planned:
        hb.notes.append(f"trained {budget} epochs where the plan with resumption gives {planned}")
    random_spec = {
        "concurrency": WORKERS,
        "random_search": {"n_experiments": max(1, budget // max_iter)},
        "matrix": service_matrix(),
    }
    done(run_group(base, RANDOM, seed, stream(RANDOM), random_spec, objective, data, max_iter))
    n_asha = asha_configs_for(budget, max_iter, eta)
    asha_spec = hyperband_spec(max_iter, eta, True, n_asha)
    done(run_group(base, ASHA, seed, stream(ASHA), asha_spec, None, data, max_iter, cap=budget))
    for system in (OPTUNA_HB, OPTUNA_SHA):
        done(run_optuna(system, seed, stream(system), data, max_iter, eta, budget))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N (default 5)")
    parser.add_argument("--max-iter", type=int, default=27, help="R, epochs at most (default 27)")
    parser.add_argument("--eta", type=int, default=3, help="reduction factor (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/multifidelity.md")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.max_iter < 1 or args.eta < 2:
        parser.error("--seeds and --max-iter must be at least 1, --eta at least 2")
    command = shlex.join(["python", "bench/multifidelity.py", *sys.argv[1:]])

    threadpool_limits(1)  # one BLAS thread: 4 workers on 2 cores fight enough already
    # Input checks cost more than the arithmetic on data this small; the inputs are ours.
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    load_before = os.getloadavg()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_split()
    planned = sum(resumed_epochs(b) for b in hyperband_rungs(args.max_iter, args.eta))
    setup = Setup(
        max_iter=args.max_iter,
        eta=args.eta,
        seeds=list(range(1, args.seeds + 1)),
        planned_budget=planned,
        asha_configs=asha_configs_for(planned, args.max_iter, args.eta),
        command=command,
    )
    started = time.monotonic()
    runs: list[Run] = []
    with fresh_database() as db, running_service(db) as base:
        for seed in setup.seeds:
            runs += run_seed(base, seed, data, args.max_iter, args.eta)
    setup.load = (load_before[0], os.getloadavg()[0])
    setup.cpu = time.process_time()
    report = render(runs, setup, time.monotonic() - started)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

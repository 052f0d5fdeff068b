"""Trials per second of hpo-engine, the bare ceiling app and Optuna, in one run on one PostgreSQL.

Three systems get the same load, one after the other, each on a fresh database of the local
PostgreSQL (postgres@127.0.0.1:5432):

* hpo-engine: `python -m app.cli serve --workers 2`, one random-search group per run;
* the ceiling: ../shared/ceiling/app.py under uvicorn with 2 workers, the least a service can do
  per trial (one transaction per suggestion, one per completion);
* Optuna: ask/tell on RDBStorage with a RandomSampler, one study, one OS process per client.

For each client count (8 and 32 by default) every client loops suggest -> complete with three
metric values; after a warm-up the window is measured for trials per second, p50 and p99 of the
suggestion call, and the CPU seconds spent in that window by the server's process tree, by
PostgreSQL and by the client. The HTTP clients are asyncio + aiohttp coroutines in a subprocess of
their own, so the load tool's CPU is measured apart from everything else. Then one group (and one
Optuna study) is grown to 10,000 trials, and the suggestion latency just after it reached 100
trials is set against that just after it reached 10,000.

Run from the repository root; it takes about five minutes:

    .venv/bin/python bench/throughput.py [--seconds 15] [--clients 8,32] \
        [--out bench/results/throughput.md]

The databases it creates (bench_hpo_<pid>, bench_ceiling_<pid>, bench_optuna_<pid>) are dropped
at the end, also on failure. Everything listens on and connects to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
CEILING_DIR = ROOT.parent / "shared" / "ceiling"
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
CLK_TCK = os.sysconf("SC_CLK_TCK")

GROUP_SPEC: dict[str, Any] = {
    "hptuning": {
        "concurrency": 1000,
        "seed": 1,
        "random_search": {"n_experiments": 100_000_000},
        "matrix": {"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}},
    },
    "objective": {"name": "loss", "optimization": "minimize"},
}
METRICS = {"loss": 0.1, "acc": 0.9, "f1": 0.5}
SUGGEST_ONE = json.dumps({"count": 1}).encode()
COMPLETE = json.dumps({"status": "succeeded", "values": METRICS}).encode()
JSON_HEADERS = {"Content-Type": "application/json"}

SERVER_START_TIMEOUT = 90.0  # seconds for a server to answer its readiness path
GROWTH_SAMPLES = 200  # timed suggestions at each group size
GROWTH_UNTIMED = 10  # suggestions before those, to warm caches after a fill
FILL_CLIENTS = 8  # concurrent clients that fill our group
NOISE_SHARE = 0.10  # of the machine's CPU used by others in a window, before a warning

HPO = "hpo-engine"
CEILING = "ceiling"
OPTUNA = "optuna"


# --------------------------------------------------------------------------- small helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def emit(line: str) -> None:
    """One line of the protocol between a load subprocess and the driver."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process plus those of its reaped children)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] is field 3.
        ticks = sum(int(v) for v in fields[11:15])
        table[int(entry)] = (int(fields[1]), ticks / CLK_TCK)
    return table


def tree_cpu(root: int | None) -> float | None:
    """CPU seconds used so far by a process and all its descendants, live or reaped."""
    if root is None:
        return None
    table = _proc_table()
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack, seen = 0.0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table.get(pid, (0, 0.0))[1]
        stack.extend(children.get(pid, ()))
    return total


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


# --------------------------------------------------------------------------- PostgreSQL


def _admin() -> Any:
    import psycopg

    return psycopg.connect(PG_CONNINFO + " dbname=postgres", autocommit=True)


def create_database(name: str) -> None:
    from psycopg import sql

    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    from psycopg import sql

    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def postgres_facts() -> tuple[int | None, str]:
    """The postmaster's pid if its /proc entry is visible here, and the server version."""
    with _admin() as conn:
        backend, version = conn.execute(
            "SELECT pg_backend_pid(), current_setting('server_version')"
        ).fetchone()
        try:
            with open(f"/proc/{backend}/stat") as f:
                text = f.read()
            postmaster = int(text[text.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            postmaster = None
    return postmaster, version


# --------------------------------------------------------------------------- servers


@contextmanager
def running_server(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in a session of its own, wait until ready_url answers 200, stop it after."""
    log: IO[bytes] = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_ready(name, proc, ready_url, log)
        yield proc
    finally:
        _stop(proc)
        log.close()


def _log_tail(log: IO[bytes], lines: int = 15) -> str:
    log.seek(0)
    return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


def _wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {SERVER_START_TIMEOUT:.0f} s:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left in the session this script started (stray workers) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=JSON_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


# --------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    system: str
    clients: int
    seconds: float
    trials: int
    p50_ms: float
    p99_ms: float
    server_cpu: float | None
    db_cpu: float | None
    client_cpu: float | None
    machine_cpu: float | None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def tps(self) -> float:
        return self.trials / self.seconds

    @property
    def other_cpu(self) -> float | None:
        """CPU that none of the three accounts for: the driver and anything else running."""
        if self.machine_cpu is None:
            return None
        ours = (self.server_cpu or 0.0) + (self.db_cpu or 0.0) + (self.client_cpu or 0.0)
        return max(0.0, self.machine_cpu - ours)

    @property
    def cores_busy(self) -> float | None:
        return None if self.machine_cpu is None else self.machine_cpu / self.seconds


@dataclass
class GrowthResult:
    system: str
    call: str
    sizes: list[int]
    p50_ms: list[float]
    p99_ms: list[float]
    fill_seconds: float


def machine_cpu() -> float | None:
    """CPU seconds all processors spent busy since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def drive_load(
    system: str,
    clients: int,
    seconds: float,
    cmd: list[str],
    server_pid: int | None,
    postmaster: int | None,
    timeout: float,
) -> LoadResult:
    """Run a load subprocess; sample CPU counters at the edges of its measured window.

    The subprocess prints `measure` when its window opens, `done` when it closes, then one
    JSON line with its own figures (trials, suggestion latencies, errors). CPU is read from
    /proc for the server's, PostgreSQL's and the load's process trees, and for the machine.
    """
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=_child_env())
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    marks: dict[str, tuple[float | None, ...]] = {}
    report: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            word = line.strip()
            if word in ("measure", "done"):
                marks[word] = (
                    tree_cpu(server_pid),
                    tree_cpu(postmaster),
                    tree_cpu(proc.pid),
                    machine_cpu(),
                )
            elif word.startswith("{"):
                report = json.loads(word)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if report is None or set(marks) != {"measure", "done"}:
        raise RuntimeError(f"{system}: load subprocess failed (exit code {proc.returncode})")
    before, after = marks["measure"], marks["done"]
    return LoadResult(
        system=system,
        clients=clients,
        seconds=seconds,
        trials=report["trials"],
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        server_cpu=_delta(before[0], after[0]),
        db_cpu=_delta(before[1], after[1]),
        client_cpu=_delta(before[2], after[2]),
        machine_cpu=_delta(before[3], after[3]),
        errors=report["errors"],
    )


# --------------------------------------------------------------------------- the HTTP load


async def http_load(base: str, group_id: int, clients: int, warmup: float, seconds: float) -> None:
    """N coroutines on one aiohttp session, each looping suggest -> complete (a subprocess)."""
    import aiohttp

    t0 = time.perf_counter() + warmup
    t1 = t0 + seconds
    suggest_url = f"{base}/api/v1/groups/{group_id}/suggestions"
    latencies: list[float] = []
    trials = 0
    errors: dict[str, int] = {}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=JSON_HEADERS
    ) as session:

        async def client() -> None:
            nonlocal trials
            while time.perf_counter() < t1:
                try:
                    began = time.perf_counter()
                    async with session.post(suggest_url, data=SUGGEST_ONE) as answer:
                        body = await answer.read()
                        status = answer.status
                    ended = time.perf_counter()
                    if status != 200:
                        error(f"suggest {status}")
                        await asyncio.sleep(0.05)
                        continue
                    if t0 <= began < t1:
                        latencies.append(ended - began)
                    handed = json.loads(body)["trials"]
                    if not handed:
                        error("suggest returned no trial")
                        await asyncio.sleep(0.01)
                        continue
                    complete_url = f"{base}/api/v1/trials/{handed[0]['id']}/complete"
                    async with session.post(complete_url, data=COMPLETE) as answer:
                        await answer.read()
                        status = answer.status
                    if status != 200:
                        error(f"complete {status}")
                        continue
                    if t0 <= time.perf_counter() <= t1:
                        trials += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error(type(exc).__name__)
                    await asyncio.sleep(0.1)

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        await asyncio.sleep(t0 - time.perf_counter())
        emit("measure")
        await asyncio.sleep(max(0.0, t1 - time.perf_counter()))
        emit("done")
        await asyncio.gather(*tasks)
    emit(
        json.dumps(
            {
                "trials": trials,
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "errors": errors,
            }
        )
    )


def run_http_load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="throughput.py _http-load")
    parser.add_argument("base")
    parser.add_argument("group_id", type=int)
    parser.add_argument("clients", type=int)
    parser.add_argument("warmup", type=float)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    coro = http_load(args.base, args.group_id, args.clients, args.warmup, args.seconds)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


# --------------------------------------------------------------------------- the Optuna load


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _optuna_trial(study: Any) -> float:
    """One trial as the load does it; returns the seconds of ask() and the two suggest_float()."""
    began = time.monotonic()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.suggest_float("y", 0, 1)
    ended = time.monotonic()
    trial.set_user_attr("acc", METRICS["acc"])
    trial.set_user_attr("f1", METRICS["f1"])
    study.tell(trial, METRICS["loss"])
    return ended - began


def _optuna_client(url: str, study_name: str, go: Any, window: Any, queue: Any) -> None:
    """One Optuna user: its own storage, load_study, then ask/tell until the window closes."""
    optuna = _quiet_optuna()
    try:
        storage = optuna.storages.RDBStorage(url)
        study = optuna.load_study(
            study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
        )
    except Exception as exc:
        queue.put(("error", repr(exc)))
        return
    queue.put(("ready",))
    if not go.wait(timeout=300):
        return
    t0, t1 = window[0], window[1]
    latencies: list[float] = []
    trials = 0
    errors: dict[str, int] = {}
    while (now := time.monotonic()) < t1:
        try:
            latency = _optuna_trial(study)
        except Exception as exc:
            kind = type(exc).__name__
            errors[kind] = errors.get(kind, 0) + 1
            continue
        if now >= t0:
            latencies.append(latency)
        if t0 <= time.monotonic() <= t1:
            trials += 1
    queue.put(("result", trials, latencies, errors))


def optuna_load(url: str, study_name: str, clients: int, warmup: float, seconds: float) -> None:
    """N forked processes on one study, each an Optuna ask/tell loop (a subprocess)."""
    optuna = _quiet_optuna()
    storage = optuna.storages.RDBStorage(url)
    optuna.create_study(study_name=study_name, storage=storage, direction="minimize")
    storage.engine.dispose()  # no connection may cross the fork below
    del storage

    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    window = ctx.Array("d", 2)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_optuna_client, args=(url, study_name, go, window, queue), daemon=True)
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in range(clients):
            message = queue.get(timeout=120)
            if message[0] == "error":
                raise RuntimeError(f"an Optuna client failed to start: {message[1]}")
        t0 = time.monotonic() + warmup
        window[0], window[1] = t0, t0 + seconds
        go.set()
        time.sleep(max(0.0, t0 - time.monotonic()))
        emit("measure")
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        emit("done")
        trials, latencies, errors = 0, [], {}
        for _ in range(clients):
            _, n, lat, errs = queue.get(timeout=120)
            trials += n
            latencies += lat
            for kind, count in errs.items():
                errors[kind] = errors.get(kind, 0) + count
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    emit(
        json.dumps(
            {
                "trials": trials,
                "p50_ms": percentile(latencies, 0.50) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "errors": errors,
            }
        )
    )


def run_optuna_load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="throughput.py _optuna-load")
    parser.add_argument("url")
    parser.add_argument("study")
    parser.add_argument("clients", type=int)
    parser.add_argument("warmup", type=float)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    optuna_load(args.url, args.study, args.clients, args.warmup, args.seconds)


# --------------------------------------------------------------------------- Optuna growth


def _optuna_bulk_fill(storage: Any, study_id: int, count: int) -> None:
    """Write `count` finished trials straight into Optuna's tables, as ask/tell leaves them.

    Each gets the two params, the objective value and the two user attributes of the load. The
    rows go through Optuna's own table definitions, in batches; ask/tell would take many minutes.
    """
    import datetime

    import sqlalchemy as sa
    from optuna.distributions import FloatDistribution, distribution_to_json
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials_t = models.TrialModel.__table__
    params_t = models.TrialParamModel.__table__
    values_t = models.TrialValueModel.__table__
    attrs_t = models.TrialUserAttributeModel.__table__
    distribution = distribution_to_json(FloatDistribution(0, 1))
    finite = models.TrialValueModel.TrialValueType.FINITE
    rng = random.Random(2)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with storage.engine.begin() as conn:
        number = conn.execute(
            sa.select(sa.func.count()).where(trials_t.c.study_id == study_id)
        ).scalar_one()
        for start in range(0, count, 1000):
            batch = [
                {
                    "number": number + start + i,
                    "study_id": study_id,
                    "state": TrialState.COMPLETE,
                    "datetime_start": now,
                    "datetime_complete": now,
                }
                for i in range(min(1000, count - start))
            ]
            ids = (
                conn.execute(
                    sa.insert(trials_t).returning(
                        trials_t.c.trial_id, sort_by_parameter_order=True
                    ),
                    batch,
                )
                .scalars()
                .all()
            )
            conn.execute(sa.insert(params_t), [
                {"trial_id": t, "param_name": name, "param_value": rng.random(),
                 "distribution_json": distribution}
                for t in ids for name in ("x", "y")
            ])  # fmt: skip
            conn.execute(sa.insert(values_t), [
                {"trial_id": t, "objective": 0, "value": METRICS["loss"], "value_type": finite}
                for t in ids
            ])  # fmt: skip
            conn.execute(sa.insert(attrs_t), [
                {"trial_id": t, "key": key, "value_json": json.dumps(METRICS[key])}
                for t in ids for key in ("acc", "f1")
            ])  # fmt: skip


def optuna_growth(url: str, target: int, samples: int) -> None:
    """Time ask() right after the study reached 100 trials and `target` trials (a subprocess)."""
    optuna = _quiet_optuna()
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(
        study_name="growth",
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=1),
        direction="minimize",
    )
    for _ in range(100):
        _optuna_trial(study)
    small_size = len(study.get_trials(deepcopy=False))
    small = [_optuna_trial(study) for _ in range(samples)]
    started = time.monotonic()
    size = len(study.get_trials(deepcopy=False))
    _optuna_bulk_fill(storage, study._study_id, max(0, target - size))
    fill_seconds = time.monotonic() - started
    big_size = len(study.get_trials(deepcopy=False))
    for _ in range(GROWTH_UNTIMED):
        _optuna_trial(study)
    big = [_optuna_trial(study) for _ in range(samples)]
    emit(json.dumps({
        "sizes": [small_size, big_size],
        "p50_ms": [percentile(small, 0.5) * 1000, percentile(big, 0.5) * 1000],
        "p99_ms": [percentile(small, 0.99) * 1000, percentile(big, 0.99) * 1000],
        "fill_seconds": fill_seconds,
    }))  # fmt: skip


def run_optuna_growth_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="throughput.py _optuna-growth")
    parser.add_argument("url")
    parser.add_argument("target", type=int)
    parser.add_argument("samples", type=int)
    args = parser.parse_args(argv)
    optuna_growth(args.url, args.target, args.samples)


# --------------------------------------------------------------------------- our growth


async def service_growth(
    base: str, group_id: int, control_id: int, target: int, samples: int
) -> list[GrowthResult]:
    """Grow one group to `target` trials; time count=1 suggestions at 100 and at `target`.

    Then, as a control against a machine whose load changes between the two samples, a fresh
    group is brought to 100 trials and suggestions alternate between it and the big group, so
    that both sizes are timed under the same conditions.
    """
    import aiohttp

    created = {group_id: 0, control_id: 0}

    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60), headers=JSON_HEADERS
    ) as session:

        async def suggest(group: int, count: int) -> list[int]:
            url = f"{base}/api/v1/groups/{group}/suggestions"
            body = json.dumps({"count": count}).encode()
            async with session.post(url, data=body) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"suggest answered {answer.status}: {await answer.text()}")
                ids = [t["id"] for t in (await answer.json())["trials"]]
            created[group] += len(ids)
            return ids

        async def complete(trial_id: int) -> None:
            url = f"{base}/api/v1/trials/{trial_id}/complete"
            async with session.post(url, data=COMPLETE) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"complete answered {answer.status}: {await answer.text()}")

        async def filler(group: int, goal: int, reserved: list[int]) -> None:
            for _ in range(goal):  # bounded: every round creates at least one trial or stops
                want = min(100, goal - reserved[0])
                if want <= 0:
                    return
                reserved[0] += want
                ids = await suggest(group, want)
                reserved[0] -= want - len(ids)
                if not ids:
                    raise RuntimeError("the group handed out no trial while filling")
                for trial_id in ids:
                    await complete(trial_id)

        async def fill(group: int, goal: int) -> None:
            reserved = [created[group]]
            await asyncio.gather(*(filler(group, goal, reserved) for _ in range(FILL_CLIENTS)))

        async def timed(group: int) -> float:
            began = time.perf_counter()
            ids = await suggest(group, 1)
            latency = time.perf_counter() - began
            for trial_id in ids:
                await complete(trial_id)
            return latency

        async def series(group: int) -> list[float]:
            for _ in range(GROWTH_UNTIMED):
                await timed(group)
            return [await timed(group) for _ in range(samples)]

        await fill(group_id, 100)
        small_size = created[group_id]
        small = await series(group_id)
        started = time.monotonic()
        await fill(group_id, target)
        fill_seconds = time.monotonic() - started
        big_size = created[group_id]
        big = await series(group_id)

        await fill(control_id, 100)
        control_sizes = [created[control_id], created[group_id]]
        for _ in range(GROWTH_UNTIMED):
            await timed(control_id)
        pairs = [(await timed(control_id), await timed(group_id)) for _ in range(samples)]
    fresh, old = [p[0] for p in pairs], [p[1] for p in pairs]

    def result(
        call: str, sizes: list[int], a: list[float], b: list[float], fill: float
    ) -> GrowthResult:
        return GrowthResult(
            system=HPO,
            call=call,
            sizes=sizes,
            p50_ms=[percentile(a, 0.5) * 1000, percentile(b, 0.5) * 1000],
            p99_ms=[percentile(a, 0.99) * 1000, percentile(b, 0.99) * 1000],
            fill_seconds=fill,
        )

    return [
        result("POST …/suggestions, count=1", [small_size, big_size], small, big, fill_seconds),
        result(
            "the same, alternating a fresh group and the big one",
            control_sizes,
            fresh,
            old,
            math.nan,
        ),
    ]


# --------------------------------------------------------------------------- the systems


@dataclass
class Run:
    """What the driver needs to run every system the same way."""

    clients: list[int]
    warmup: float
    seconds: float
    growth_trials: int
    postmaster: int | None
    results: list[LoadResult] = field(default_factory=list)
    growth: list[GrowthResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def http_load(self, system: str, base: str, group_ids: list[int], server_pid: int) -> None:
        """The HTTP load at each client count, on a group of its own."""
        for n, group_id in zip(self.clients, group_ids, strict=True):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "_http-load",
                base,
                str(group_id),
                str(n),
                str(self.warmup),
                str(self.seconds),
            ]
            timeout = self.warmup + self.seconds + 120
            self.results.append(
                drive_load(system, n, self.seconds, cmd, server_pid, self.postmaster, timeout)
            )


def run_hpo(run: Run, database: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _child_env(HPO_DATABASE_URL=PG_URL.format(db=database), HPO_LOG_LEVEL="WARNING")
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    with running_server(HPO, cmd, env, ROOT, f"{base}/readyz") as proc:
        groups = []
        for _ in range(len(run.clients) + 2):
            status, body = http_json("POST", f"{base}/api/v1/groups", GROUP_SPEC)
            if status != 201:
                raise RuntimeError(f"creating a group answered {status}: {body}")
            groups.append(int(body["id"]))
        run.http_load(HPO, base, groups[:-2], proc.pid)
        run.growth += asyncio.run(
            service_growth(base, groups[-2], groups[-1], run.growth_trials, GROWTH_SAMPLES)
        )


def run_ceiling(run: Run, database: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_CONNINFO} dbname={database}", autocommit=True) as conn:
        conn.execute((CEILING_DIR / "schema.sql").read_text())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _child_env(CEILING_DSN=f"{PG_CONNINFO} dbname={database}")
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(CEILING_DIR),
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with running_server(CEILING, cmd, env, ROOT, f"{base}/openapi.json") as proc:
        # schema.sql makes groups 1 to 64: one group per client count.
        run.http_load(CEILING, base, list(range(1, len(run.clients) + 1)), proc.pid)


def run_optuna(run: Run, database: str) -> None:
    url = PG_URL.format(db=database)
    script = str(Path(__file__).resolve())
    for n in run.clients:
        cmd = [
            sys.executable,
            script,
            "_optuna-load",
            url,
            f"load-{n}",
            str(n),
            str(run.warmup),
            str(run.seconds),
        ]
        # Optuna has no server: its clients talk to PostgreSQL themselves.
        timeout = run.warmup + run.seconds + 300
        run.results.append(drive_load(OPTUNA, n, run.seconds, cmd, None, run.postmaster, timeout))
    cmd = [
        sys.executable,
        script,
        "_optuna-growth",
        url,
        str(run.growth_trials),
        str(GROWTH_SAMPLES),
    ]
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"Optuna growth failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    run.growth.append(
        GrowthResult(
            system=OPTUNA,
            call="study.ask() + 2 × suggest_float",
            sizes=report["sizes"],
            p50_ms=report["p50_ms"],
            p99_ms=report["p99_ms"],
            fill_seconds=report["fill_seconds"],
        )
    )


# --------------------------------------------------------------------------- the report


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def render(run: Run, command: str, pg_version: str, started: str, elapsed: float) -> str:
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                cpu_model,
            )
    except OSError:
        pass
    ncpu = len(os.sched_getaffinity(0))
    by = {(r.system, r.clients): r for r in run.results}
    out = [
        "# Throughput: hpo-engine against the ceiling and Optuna",
        "",
        f"- Command: `{command}` (from {ROOT})",
        f"- Machine: {ncpu} CPUs (nproc) of {cpu_model}; Python {platform.python_version()}; "
        f"PostgreSQL {pg_version} on 127.0.0.1, same machine; started {started}, "
        f"took {elapsed:.0f} s",
        f"- Load: each client loops suggest → complete with 3 metric values; {run.warmup:g} s "
        f"warm-up, then {run.seconds:g} s measured. HTTP systems: asyncio + aiohttp coroutines in "
        "one separate client process. Optuna: one OS process per client, each with its own "
        "RDBStorage, `load_study` and `RandomSampler`.",
        "",
        "| system | clients | trials/s | suggest p50 ms | suggest p99 ms | server CPU s "
        "| PostgreSQL CPU s | client CPU s | other CPU s | cores busy | ours/ceiling "
        "| ours/optuna |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for system in (HPO, CEILING, OPTUNA):
        for n in run.clients:
            r = by.get((system, n))
            if r is None:
                continue
            ratio_c = ratio_o = ""
            if system == HPO:
                if (CEILING, n) in by and by[(CEILING, n)].tps:
                    ratio_c = f"{r.tps / by[(CEILING, n)].tps:.2f}"
                if (OPTUNA, n) in by and by[(OPTUNA, n)].tps:
                    ratio_o = f"{r.tps / by[(OPTUNA, n)].tps:.1f}"
            out.append(
                f"| {system} | {n} | {_num(r.tps)} | {_num(r.p50_ms, 2)} | {_num(r.p99_ms, 2)} "
                f"| {_num(r.server_cpu)} | {_num(r.db_cpu)} | {_num(r.client_cpu)} "
                f"| {_num(r.other_cpu)} | {_num(r.cores_busy, 2)} of {ncpu} "
                f"| {ratio_c} | {ratio_o} |"
            )
    out += [
        "",
        "CPU columns are seconds used during the measured window, read from /proc at its "
        "edges: the server's process tree, all PostgreSQL processes (postmaster and backends), "
        "and the client's process tree (for Optuna its processes, which do the work a server "
        "would, so it has no server column). *Other* is the rest of the machine's busy time "
        "in the window "
        "(this driver, and anything else running on the machine); *cores busy* is the "
        "machine's whole busy time divided by the window (from /proc/stat). For Optuna the "
        "suggestion call is `study.ask()` plus two `trial.suggest_float()`; the three metric "
        "values are the objective given to `study.tell()` (loss) and two `trial.set_user_attr()` "
        "(acc, f1).",
    ]
    errors = [
        f"{r.system} at {r.clients} clients: "
        + ", ".join(f"{kind} × {count}" for kind, count in sorted(r.errors.items()))
        for r in run.results
        if r.errors
    ]
    if errors:
        out += ["", "Failed calls during the load: " + "; ".join(errors) + "."]
    noisy = [
        (r.other_cpu / (r.seconds * ncpu), r)
        for r in run.results
        if r.other_cpu is not None and r.other_cpu > NOISE_SHARE * r.seconds * ncpu
    ]
    if noisy:
        worst = ", ".join(f"{r.system} at {r.clients} clients {share:.0%}" for share, r in noisy)
        out += [
            "",
            f"**The machine was not quiet.** Processes outside the benchmark used more than "
            f"{NOISE_SHARE:.0%} of its CPU during some measured windows ({worst}); those rows "
            "are lower than they would be on an idle machine.",
        ]

    out += ["", "## Targets (8 clients)", ""]
    ours, ceiling, optuna = by.get((HPO, 8)), by.get((CEILING, 8)), by.get((OPTUNA, 8))
    if ours and ceiling and ceiling.tps:
        share = ours.tps / ceiling.tps
        out.append(
            f"- ours/ceiling = {share:.2f} (target ≥ 0.70): {'met' if share >= 0.70 else 'missed'}"
        )
    else:
        out.append("- ours/ceiling: not measured (no 8-client run of both)")
    if ours and optuna and optuna.tps:
        times = ours.tps / optuna.tps
        out.append(f"- ours/optuna = {times:.1f} (target ≥ 8): {'met' if times >= 8 else 'missed'}")
    else:
        out.append("- ours/optuna: not measured (no 8-client run of both)")

    out += [
        "",
        "## Suggestion latency against the size of one group",
        "",
        f"One client, sequential: {GROWTH_UNTIMED} untimed then {GROWTH_SAMPLES} timed "
        "suggestions (each followed by its completion) right after the group reached each "
        "size; the group is filled by concurrent clients in between. The two samples are a "
        "minute or more apart, so a change in the machine's load between them shows as growth; "
        "the alternating rows time a fresh group and the big one turn about, under the same "
        "conditions.",
        "",
        "| system | call | trials before | p50 ms | p99 ms | p50 growth | filled in |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for g in run.growth:
        for i, size in enumerate(g.sizes):
            growth = f"{g.p50_ms[i] / g.p50_ms[0]:.2f}×" if i else "1.00×"
            filled = f"{g.fill_seconds:.0f} s" if i and not math.isnan(g.fill_seconds) else ""
            out.append(
                f"| {g.system} | {g.call} | {size:,} | {_num(g.p50_ms[i], 2)} "
                f"| {_num(g.p99_ms[i], 2)} | {growth} | {filled} |"
            )
    ours_growth = [g.p50_ms[1] / g.p50_ms[0] for g in run.growth if g.system == HPO]
    if ours_growth:
        flat = all(ratio <= 1.2 for ratio in ours_growth)
        out += [
            "",
            "Target (a suggestion latency that does not grow with the group's size; counted as "
            "flat if p50 grows by at most 20 % in both comparisons): "
            f"{'met' if flat else 'missed'} "
            f"({', '.join(f'{ratio:.2f}×' for ratio in ours_growth)}).",
        ]
    if any(g.system == OPTUNA for g in run.growth):
        out += [
            "",
            "Optuna's study was filled by writing finished trials (the same two params, objective "
            "value and two user attributes as the load) straight into its tables through its own "
            "SQLAlchemy table definitions: ask/tell is far too slow to reach that size in this "
            "run. The untimed calls after the fill include the one that loads the new trials "
            "into Optuna's trial cache.",
        ]
    if run.notes:
        out += ["", "## Problems", ""] + [f"- {note}" for note in run.notes]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the driver


def _sigterm_to_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each window")
    parser.add_argument("--clients", default="8,32", help="comma-separated client counts")
    parser.add_argument(
        "--growth-trials",
        type=int,
        default=10_000,
        help="size of the group whose suggestion latency is compared with 100",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "throughput.md")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    command = shlex.join([sys.executable, *sys.argv])
    signal.signal(signal.SIGTERM, _sigterm_to_exit)

    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    started = time.monotonic()
    databases = {name: f"bench_{name}_{os.getpid()}" for name in ("hpo", "ceiling", "optuna")}
    steps: list[tuple[str, Callable[[Run, str], None], str]] = [
        (CEILING, run_ceiling, databases["ceiling"]),
        (HPO, run_hpo, databases["hpo"]),
        (OPTUNA, run_optuna, databases["optuna"]),
    ]
    postmaster, pg_version = postgres_facts()
    run = Run(clients, args.warmup, args.seconds, args.growth_trials, postmaster)
    if postmaster is None:
        run.notes.append("PostgreSQL's processes are not visible in /proc: no database CPU.")
    try:
        for database in databases.values():
            create_database(database)
        for system, step, database in steps:
            try:
                step(run, database)
            except Exception as exc:
                run.notes.append(f"{system}: {exc}")
    finally:
        for database in databases.values():
            drop_database(database)

    report = render(run, command, pg_version, started_at, time.monotonic() - started)
    sys.stdout.write(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 1 if run.notes else 0


if __name__ == "__main__":
    modes: dict[str, Callable[[list[str]], None]] = {
        "_http-load": run_http_load_main,
        "_optuna-load": run_optuna_load_main,
        "_optuna-growth": run_optuna_growth_main,
    }
    if len(sys.argv) > 1 and sys.argv[1] in modes:
        modes[sys.argv[1]](sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))

"""The client side of hpo-engine: an HTTP client and `hpo agent`, which trains for a group.

The agent asks the service for suggestions and runs a command once per trial,
`parallel` commands at a time, each in a thread of its own:

    hpo agent 7 -n 4 -- python train.py --lr {lr} --units {units}

Every argument of the command is a `str.format` template: `{name}` becomes the
trial's value of parameter `name` (format specs work: `{lr:.5f}`), and
`{trial_id}`, `{group_id}` and `{resume_from}` (empty unless a Hyperband
promotion) are there too. Write `{{` and `}}` for literal braces. The command
also gets these environment variables:

    HPO_URL, HPO_TOKEN          where the service is (so an SDK can report itself)
    HPO_GROUP_ID, HPO_TRIAL_ID  which trial this run is
    HPO_WORKER_ID               the agent worker that runs it
    HPO_PARAMS                  the trial's params as a JSON object
    HPO_RESOURCE, HPO_RESUME_FROM, HPO_RESUME
                                Hyperband only: what to train with, and the trial
                                whose checkpoint to continue (when resuming)

Metric lines
------------
A command reports metrics by printing lines, on stdout or stderr, of this form:

    hpo: loss=0.31 acc=0.9 step=3

that is `hpo:` at the start of the line, then `name=value` pairs separated by
spaces or commas. Values are finite numbers. `step` (a whole number >= 0) is the
step of the report; without it, a report is one step past the previous one,
starting at 0. Each line is one report to the service; a malformed line is
reported on stderr and otherwise ignored. When the command ends, the last value
of each name is sent as the trial's final values. A command that reports through
the HTTP API itself (an SDK reading HPO_TRIAL_ID and HPO_URL) needs no metric
lines: the service keeps what it sends, and the agent still watches the trial.

Lifecycle of one trial: the command starts in a process group of its own; the
agent sends a heartbeat every `heartbeat` seconds; when the answer to a
heartbeat or a metric report says `should_stop`, the process group gets SIGTERM,
then SIGKILL after `grace` seconds, and the trial is completed as `stopped`.
Otherwise exit code 0 completes it as `succeeded` and any other as `failed`.
Ctrl-C (or SIGTERM) stops asking for work, stops the running commands the same
way and completes their trials as `stopped`; a second Ctrl-C skips the grace
period. Completions carry an `Idempotency-Key`, so a retried one is harmless.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import string
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED_GROUP = frozenset({"done", "stopped", "failed"})
METRIC_PREFIX = "hpo:"
# Names a command template may use besides the group's parameters.
EXTRA_FIELDS = ("trial_id", "group_id", "resume_from")
INTERRUPTED = 130


# --------------------------------------------------------------------------- HTTP client


class ApiError(Exception):
    """The service answered with an error (an RFC 9457 problem, when it could)."""

    def __init__(self, status: int, detail: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        super().__init__(f"HTTP {status}: {detail}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail") or body.get("title") or response.reason_phrase
            errors = body.get("errors") or []
            return cls(
                response.status_code, str(detail), errors if isinstance(errors, list) else []
            )
        text = response.text.strip()[:300]
        return cls(response.status_code, text or response.reason_phrase)


class ServiceUnreachable(Exception):
    """No answer from the service at all (refused, timed out, cut off)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the hpo service at {url} ({reason}); is `hpo serve` running "
            "there? Point --url or HPO_URL at it."
        )


# Answers worth asking again for: the service or a proxy in front of it is busy.
_TRANSIENT_STATUS = frozenset({502, 503, 504})


class ServiceClient:
    """A small synchronous client of the hpo-engine API, safe to share between threads.

    `retries` is how many more times a request is sent after a transport error or
    a 502/503/504. Every POST carries an `Idempotency-Key`, the same on each retry.
    """

    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, *, retries: int = 0
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"User-Agent": "hpo-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(30.0, connect=5.0)
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; raise ApiError on an error answer, ServiceUnreachable on none.

        A POST gets an `Idempotency-Key` unless `idempotent` is false.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        if method == "POST" and idempotent:
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise ServiceUnreachable(self.url, _describe_transport(exc)) from None
            else:
                if response.status_code < 400:
                    return response
                if last or response.status_code not in _TRANSIENT_STATUS:
                    raise ApiError.from_response(response)
            time.sleep(min(0.5 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.request("POST", path, **kwargs).json()


def _describe_transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}" if str(exc) else "connection failed"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- metric lines


class MetricLineError(ValueError):
    """A line starts with `hpo:` but is not a valid report."""


def parse_metric_line(line: str) -> tuple[dict[str, float], int | None] | None:
    """The values and step of a metric line; None for a line that is not one."""
    text = line.strip()
    if not text.startswith(METRIC_PREFIX):
        return None
    tokens = text[len(METRIC_PREFIX) :].replace(",", " ").split()
    values: dict[str, float] = {}
    step: int | None = None
    for token in tokens:
        name, sep, raw = token.partition("=")
        if not sep or not name or not raw:
            raise MetricLineError(f"`{token}` is not name=value")
        if name == "step":
            try:
                step = int(raw)
            except ValueError:
                raise MetricLineError(f"step must be a whole number, not {raw!r}") from None
            if step < 0:
                raise MetricLineError(f"step must be >= 0, not {step}")
            continue
        try:
            value = float(raw)
        except ValueError:
            raise MetricLineError(f"{name}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise MetricLineError(f"{name}: {raw} is not a finite number")
        values[name] = value
    if not values:
        raise MetricLineError("no name=value pair")
    return values, step


# --------------------------------------------------------------------------- command templates


def template_fields(command: Sequence[str]) -> set[str]:
    """The names the command's `{...}` placeholders use; ValueError when one is malformed."""
    names: set[str] = set()
    for arg in command:
        try:
            parsed = list(string.Formatter().parse(arg))
        except ValueError as exc:
            raise ValueError(f"argument {arg!r}: {exc} (write {{{{ and }}}} for braces)") from None
        for _, field_name, _, _ in parsed:
            if field_name is None:
                continue
            base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
            if not base or base.isdigit():
                raise ValueError(f"argument {arg!r}: use named placeholders such as {{lr}}")
            names.add(base)
    return names


def known_fields(group: Mapping[str, Any]) -> set[str]:
    """Every name a command template may use for this group."""
    hptuning = group.get("hptuning") or {}
    names = set(hptuning.get("matrix") or {}) | set(EXTRA_FIELDS)
    resource = (hptuning.get("hyperband") or {}).get("resource") or {}
    if resource.get("name"):
        names.add(resource["name"])
    return names


def render_command(command: Sequence[str], trial: Mapping[str, Any]) -> list[str]:
    """The command of one trial: every argument formatted with the trial's values."""
    fields = {
        **trial["params"],
        "trial_id": trial["id"],
        "group_id": trial["group_id"],
        "resume_from": "" if trial.get("resume_from") is None else trial["resume_from"],
    }
    return [arg.format_map(fields) for arg in command]


def trial_environment(
    trial: Mapping[str, Any], url: str, token: str | None, worker_id: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "HPO_URL": url,
        "HPO_GROUP_ID": str(trial["group_id"]),
        "HPO_TRIAL_ID": str(trial["id"]),
        "HPO_WORKER_ID": worker_id,
        "HPO_PARAMS": json.dumps(trial["params"]),
        # Metric lines of a Python command arrive as they are printed, not in blocks.
        "PYTHONUNBUFFERED": "1",
    }
    if token:
        env["HPO_TOKEN"] = token
    for key, name in (
        ("resource", "HPO_RESOURCE"),
        ("resume_from", "HPO_RESUME_FROM"),
        ("resume", "HPO_RESUME"),
    ):
        value = trial.get(key)
        if value is None:
            env.pop(name, None)
        else:
            env[name] = json.dumps(value) if isinstance(value, bool) else str(value)
    return env


def format_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items())


def format_values(values: Mapping[str, float] | None) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in (values or {}).items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --------------------------------------------------------------------------- the agent


@dataclass
class TrialRun:
    """One trial as a worker runs it."""

    trial: dict[str, Any]
    worker: int
    started: float = field(default_factory=time.monotonic)
    process: subprocess.Popen[str] | None = None
    last_values: dict[str, float] = field(default_factory=dict)
    next_step: int = 0
    stop_reason: str | None = None  # why the command must end early
    signalled: bool = False  # the agent sent it SIGTERM or SIGKILL
    kill_at: float | None = None

    @property
    def id(self) -> int:
        return self.trial["id"]


@dataclass
class Outcome:
    trial_id: int
    status: str
    objective: float | None


class Agent:
    """Runs a command for each suggestion of a group, `parallel` at a time."""

    def __init__(
        self,
        client: ServiceClient,
        group_id: int,
        command: Sequence[str],
        *,
        parallel: int = 1,
        heartbeat: float | None = None,
        grace: float = 10.0,
        max_trials: int | None = None,
        echo: bool = True,
        live: bool | None = None,
        console: Console | None = None,
        token: str | None = None,
        wait_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.group_id = group_id
        self.command = list(command)
        self.parallel = parallel
        self.heartbeat = heartbeat
        self.grace = grace
        self.max_trials = max_trials
        self.echo = echo
        self.console = console or Console()
        self.err = Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.token = token
        self.wait_seconds = wait_seconds
        self.prefix = f"agent-{socket.gethostname()}-{os.getpid()}"

        self._lock = threading.Lock()
        self._stopping = threading.Event()  # no new work: interrupted, or the group ended
        self._interrupted = False
        self._forced = False
        self._runs: dict[int, TrialRun] = {}  # by worker slot
        self._taken = 0  # trials asked for or running, against max_trials
        self._outcomes: list[Outcome] = []
        self._group: dict[str, Any] = {}
        self._group_status: str | None = None
        self._fatal: str | None = None
        self._live: Live | None = None

    # ----------------------------------------------------------------- entry points

    def run(self) -> int:
        """Work until the group ends (0), it fails (1), or an interruption (130)."""
        self._group = self.client.get(f"/api/v1/groups/{self.group_id}")
        self._group_status = self._group["status"]
        self._check_command()
        if self._group_status in FINISHED_GROUP:
            self._say(f"group {self.group_id} is already {self._group_status}: nothing to run")
            return 0
        if self.heartbeat is None:
            self.heartbeat = min(30.0, max(1.0, self._group["lease_seconds"] / 3))
        self._say(
            f"working on group {self.group_id} ({self._group['algorithm']}) with "
            f"{self.parallel} worker{'s' if self.parallel > 1 else ''}: {' '.join(self.command)}"
        )
        restore = self._install_signal_handlers()
        workers = [
            threading.Thread(target=self._worker, args=(slot,), name=f"hpo-worker-{slot}")
            for slot in range(1, self.parallel + 1)
        ]
        try:
            if self.live:
                self._live = Live(
                    console=self.console, get_renderable=self._render, refresh_per_second=4
                )
                self._live.start()
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers):
                # Short joins keep the main thread free to take signals.
                for worker in workers:
                    worker.join(0.1)
        finally:
            if self._live is not None:
                self._live.stop()
                self._live = None
            restore()
        return self._summarise()

    def interrupt(self) -> None:
        """Stop asking for work; end running commands, and report their trials stopped.

        A second call skips the grace period: the commands get SIGKILL at once.
        """
        with self._lock:
            if self._interrupted:
                self._forced = True
                for run in self._runs.values():
                    run.kill_at = time.monotonic()
                return
            self._interrupted = True
            self._stopping.set()
            for run in self._runs.values():
                run.stop_reason = run.stop_reason or "agent interrupted"
        self._say("interrupted: stopping the running trials (again to kill them at once)", "yellow")

    # ----------------------------------------------------------------- setup

    def _check_command(self) -> None:
        if not self.command:
            raise ValueError("no command to run: give it after `--`")
        names = template_fields(self.command)
        if self._group.get("hptuning", {}).get("matrix") is not None:
            unknown = sorted(names - known_fields(self._group))
            if unknown:
                known = ", ".join(sorted(known_fields(self._group)))
                raise ValueError(
                    f"the command uses {', '.join('{' + n + '}' for n in unknown)}, which "
                    f"group {self.group_id} does not define (it has: {known})"
                )

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {
            sig: signal.signal(sig, lambda *_: self.interrupt())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    # ----------------------------------------------------------------- workers

    def _worker(self, slot: int) -> None:
        try:
            self._work(slot)
        except Exception as exc:  # a bug here must not leave the others waiting forever
            self._fail(f"worker {slot} crashed: {exc!r}")

    def _work(self, slot: int) -> None:
        worker_id = f"{self.prefix}-{slot}"
        unreachable_since: float | None = None
        while not self._stopping.is_set():
            if not self._reserve():
                break
            got_trial = False
            try:
                # No Idempotency-Key and no retry here: the service stores the first
                # answer of a keyed request, so a keyed long poll would replay its first
                # (empty) look instead of waiting. The loop asks again by itself, and a
                # trial whose answer got lost comes back when its lease runs out.
                answer = self.client.post(
                    f"/api/v1/groups/{self.group_id}/suggestions",
                    {"count": 1, "worker_id": worker_id, "wait_seconds": self.wait_seconds},
                    timeout=self.wait_seconds + 30,
                    retries=0,
                    idempotent=False,
                )
            except ServiceUnreachable as exc:
                if unreachable_since is None:
                    unreachable_since = time.monotonic()
                    self._say(f"worker {slot}: {exc.reason}; retrying", "yellow")
                self._release()
                self._stopping.wait(5)
                continue
            except ApiError as exc:
                self._release()
                self._fail(f"group {self.group_id}: {exc.detail}")
                break
            unreachable_since = None
            status = answer["group_status"]
            with self._lock:
                if self._group_status not in FINISHED_GROUP:
                    self._group_status = status
            for trial in answer["trials"]:
                got_trial = True
                self._run_trial(trial, slot, worker_id)
            if not got_trial:
                self._release()
                if status in FINISHED_GROUP:
                    self._stopping.set()
                    break
                self._stopping.wait(answer.get("retry_after") or 1.0)

    def _reserve(self) -> bool:
        with self._lock:
            if self.max_trials is not None and self._taken >= self.max_trials:
                return False
            self._taken += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._taken -= 1

    def _fail(self, message: str) -> None:
        with self._lock:
            self._fatal = self._fatal or message
        self._stopping.set()

    # ----------------------------------------------------------------- one trial

    def _run_trial(self, trial: dict[str, Any], slot: int, worker_id: str) -> None:
        run = TrialRun(trial=trial, worker=slot)
        with self._lock:
            self._runs[slot] = run
            if self._interrupted:
                run.stop_reason = "agent interrupted"
        try:
            if run.stop_reason is not None:
                # Handed out while we were shutting down: never started, not left running.
                self._say(f"trial {run.id} not started: {run.stop_reason}", "yellow")
                self._finish(run, "stopped", None)
                return
            try:
                argv = render_command(self.command, trial)
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    env=trial_environment(trial, self.client.url, self.token, worker_id),
                    start_new_session=True,
                )
            except (OSError, KeyError, ValueError, IndexError) as exc:
                self._say(f"trial {run.id} could not start: {exc}", "red")
                self._finish(run, "failed", None)
                return
            run.process = process
            self._say(f"trial {run.id} started (worker {slot}): {format_params(trial['params'])}")
            reader = threading.Thread(target=self._read_output, args=(run,), daemon=True)
            reader.start()
            returncode = self._supervise(run)
            reader.join(timeout=5)
            if run.signalled:
                status = "stopped"
            else:
                status = "succeeded" if returncode == 0 else "failed"
            self._finish(run, status, returncode)
        finally:
            if run.process is not None and run.process.poll() is None:
                self._signal(run, signal.SIGKILL)  # only after an error of our own
            with self._lock:
                self._runs.pop(slot, None)

    def _supervise(self, run: TrialRun) -> int:
        """Wait for the command; heartbeat meanwhile, and end it when told to."""
        assert run.process is not None and self.heartbeat is not None
        next_beat = time.monotonic() + self.heartbeat
        while True:
            try:
                returncode = run.process.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if run.stop_reason is not None:
                if not run.signalled:
                    run.signalled = True
                    run.kill_at = now if self._forced else now + self.grace
                    self._signal(run, signal.SIGTERM)
                elif run.kill_at is not None and now >= run.kill_at:
                    run.kill_at = None
                    self._signal(run, signal.SIGKILL)
            if now >= next_beat and run.stop_reason is None:
                next_beat = now + self.heartbeat
                self._heartbeat(run)
        # Whatever the command left behind in its process group goes with it.
        self._signal(run, signal.SIGKILL)
        return returncode

    def _signal(self, run: TrialRun, sig: int) -> None:
        assert run.process is not None
        try:
            os.killpg(run.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _heartbeat(self, run: TrialRun) -> None:
        try:
            answer = self.client.post(
                f"/api/v1/trials/{run.id}/heartbeat",
                {"worker_id": f"{self.prefix}-{run.worker}"},
                timeout=10,
            )
        except ServiceUnreachable as exc:
            self._say(f"trial {run.id}: heartbeat not delivered ({exc.reason})", "yellow")
            return
        except ApiError as exc:
            if exc.status == 404:
                self._request_stop(run, "the trial no longer exists on the service")
            else:
                self._say(f"trial {run.id}: heartbeat refused: {exc.detail}", "yellow")
            return
        if answer.get("should_stop"):
            self._request_stop(run, answer.get("reason") or "the service said stop")

    def _request_stop(self, run: TrialRun, reason: str) -> None:
        with self._lock:
            if run.stop_reason is not None:
                return
            run.stop_reason = reason
        self._say(f"trial {run.id}: stopping the command ({reason})", "yellow")

    def _read_output(self, run: TrialRun) -> None:
        assert run.process is not None and run.process.stdout is not None
        for raw in run.process.stdout:
            line = raw.rstrip("\r\n")
            if self.echo:
                self._emit(Text(f"[trial {run.id}] ", style="dim") + Text(line))
            try:
                parsed = parse_metric_line(line)
            except MetricLineError as exc:
                self.err.print(
                    f"trial {run.id}: ignored metric line {line!r}: {exc}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            if parsed is not None:
                self._report(run, *parsed)

    def _report(self, run: TrialRun, values: dict[str, float], step: int | None) -> None:
        if step is None:
            step = run.next_step
        run.next_step = step + 1
        run.last_values.update(values)
        try:
            answer = self.client.post(
                f"/api/v1/trials/{run.id}/metrics", {"values": values, "step": step}, timeout=15
            )
        except ServiceUnreachable as exc:
            self._say(f"trial {run.id}: metrics of step {step} not delivered ({exc.reason})")
            return
        except ApiError as exc:
            self._say(f"trial {run.id}: metrics of step {step} refused: {exc.detail}", "yellow")
            if exc.status == 404:
                self._request_stop(run, "the trial no longer exists on the service")
            return
        if answer.get("should_stop"):
            self._request_stop(run, answer.get("reason") or "the service said stop")

    def _finish(self, run: TrialRun, status: str, returncode: int | None) -> None:
        """Complete the trial on the service, and say how it went."""
        values = dict(run.last_values) or None
        try:
            view = self.client.post(
                f"/api/v1/trials/{run.id}/complete",
                {"status": status, "values": values},
                retries=max(self.client.retries, 3),
                timeout=15,
            )
        except ApiError as exc:
            view = self._already_complete(run, exc)
        except ServiceUnreachable as exc:
            self._say(f"trial {run.id}: could not report it {status} ({exc.reason})", "red")
            view = None
        final = view["status"] if view else status
        objective = view.get("objective") if view else None
        with self._lock:
            self._outcomes.append(Outcome(run.id, final, objective))
        elapsed = time.monotonic() - run.started
        detail = [f"in {elapsed:.1f}s"]
        if returncode is not None and not run.signalled:
            detail.append(f"exit code {returncode}")
        if run.stop_reason is not None:
            detail.append(run.stop_reason)
        if final != status:
            detail.append(f"the service had it {final} already")
        if values:
            detail.append(format_values(values))
        style = {"succeeded": "green", "failed": "red"}.get(final, "yellow")
        self._say(f"trial {run.id} {final} ({'; '.join(detail)})", style)

    def _already_complete(self, run: TrialRun, exc: ApiError) -> dict[str, Any] | None:
        """A refused completion: the command (or an SDK) may have completed it already."""
        if exc.status == 409:
            try:
                view = self.client.get(f"/api/v1/trials/{run.id}")
            except (ApiError, ServiceUnreachable):
                view = None
            if view is not None and view["status"] != "running":
                return view
        self._say(f"trial {run.id}: completion refused: {exc.detail}", "red")
        return None

    # ----------------------------------------------------------------- output

    def _emit(self, renderable: RenderableType) -> None:
        target = self._live.console if self._live is not None else self.console
        target.print(renderable, soft_wrap=True, highlight=False)

    def _say(self, message: str, style: str | None = None) -> None:
        self._emit(Text("[agent] ", style="bold") + Text(message, style=style or ""))

    def _objective(self) -> tuple[str | None, bool]:
        objective = self._group.get("objective") or {}
        return objective.get("name"), objective.get("optimization") == "maximize"

    def _best(self) -> Outcome | None:
        _, maximize = self._objective()
        # As the service picks a group's best trial: among the succeeded ones.
        scored = [o for o in self._outcomes if o.objective is not None and o.status == "succeeded"]
        if not scored:
            return None
        pick = max if maximize else min
        return pick(scored, key=lambda o: o.objective)

    def _tally(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for outcome in self._outcomes:
            tally[outcome.status] = tally.get(outcome.status, 0) + 1
        return tally

    def _best_text(self) -> str:
        best = self._best()
        name, _ = self._objective()
        if best is None or name is None:
            return "best: -"
        return f"best {name} {_short(best.objective)} (trial {best.trial_id})"

    def _render(self) -> RenderableType:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.worker)
            tally = self._tally()
            done = len(self._outcomes)
            best = self._best_text()
        now = time.monotonic()
        table = Table(expand=False, box=None, header_style="bold")
        for column in ("worker", "trial", "params", "time", "last metrics", "state"):
            table.add_column(column)
        for run in runs:
            state = "running" if run.stop_reason is None else f"stopping: {run.stop_reason}"
            table.add_row(
                str(run.worker),
                str(run.id),
                format_params(run.trial["params"]),
                f"{now - run.started:.0f}s",
                format_values(run.last_values),
                state,
            )
        counts = ", ".join(f"{n} {s}" for s, n in sorted(tally.items())) or "none yet"
        header = Text.assemble(
            (f"group {self.group_id}", "bold"),
            f"  running {len(runs)}  done {done} ({counts})  {best}",
        )
        return Group(header, table) if runs else header

    def _summarise(self) -> int:
        tally = self._tally()
        counts = ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
        total = len(self._outcomes)
        summary = f"{total} trial{'' if total == 1 else 's'} run"
        if counts:
            summary += f" ({counts})"
        summary += f"; {self._best_text()}"
        if self._fatal:
            self._say(f"{summary}; stopped: {self._fatal}", "red")
            return 1
        if self._interrupted:
            self._say(f"{summary}; interrupted", "yellow")
            return INTERRUPTED
        status = self._group_status
        self._say(f"{summary}; group {self.group_id} is {status}")
        if status == "failed":
            return 1
        return 0

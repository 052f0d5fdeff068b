"""What the fault tests share: a client that retries like a careful user, and read-backs.

`RetryingClient` is the HTTP client of one training worker. Each call is one
logical request with an `Idempotency-Key` of its own; when the answer is lost
(the connection broke, the server died) or the service says 503, it sends the
very same request with the very same key again, to the next server of its
list, until it gets an answer. Everything it saw is recorded for the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# How long one logical request may keep retrying before the test gives up on it.
GIVE_UP_AFTER = 90.0


@dataclass
class Answer503:
    """One 503 answer, as the client saw it."""

    retry_after: str | None
    content_type: str
    body: dict[str, Any]


@dataclass
class RetryingClient:
    bases: list[str]
    start: int = 0
    timeout: float = 30.0
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable: list[Answer503] = field(default_factory=list)
    lost_answers: int = 0  # requests whose connection broke before the answer came
    retried_requests: int = 0  # logical requests that needed more than one try

    def __post_init__(self) -> None:
        self._current = self.start % len(self.bases)
        self._http = [httpx.Client(base_url=b, timeout=self.timeout) for b in self.bases]

    def close(self) -> None:
        for http in self._http:
            http.close()

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST until an answer other than 503 comes back; one key for every try."""
        key = uuid.uuid4().hex
        deadline = time.monotonic() + GIVE_UP_AFTER
        tries = 0
        while True:
            tries += 1
            if tries == 2:
                self.retried_requests += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"POST {path} got no answer in {GIVE_UP_AFTER} s")
            http = self._http[self._current]
            try:
                response = http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                # The server went away with our request: was it done or not? The key
                # lets the next server tell.
                self.lost_answers += 1
                self._current = (self._current + 1) % len(self._http)
                time.sleep(0.02)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code != 503:
                return response
            self.unavailable.append(
                Answer503(
                    retry_after=response.headers.get("retry-after"),
                    content_type=response.headers.get("content-type", ""),
                    body=response.json(),
                )
            )
            # The service asks for Retry-After seconds; a test has no time to spare.
            time.sleep(min(float(response.headers.get("retry-after") or 1), 0.1))

    def get(self, path: str, **params: Any) -> httpx.Response:
        for _ in range(len(self._http) * 10):
            try:
                return self._http[self._current].get(path, params=params)
            except httpx.TransportError:
                self._current = (self._current + 1) % len(self._http)
                time.sleep(0.05)
        raise RuntimeError(f"no server answered GET {path}")


def all_trials(base: str, group_id: int) -> list[dict[str, Any]]:
    """Every trial of a group, page after page."""
    items: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=base, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = http.get(f"/api/v1/groups/{group_id}/trials", params=params)
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items


def stored_metrics(base: str, group_id: int) -> dict[tuple[int, str, int], float]:
    """Every stored metric value of a group, by (trial id, name, step)."""
    response = httpx.get(
        f"{base}/api/v1/groups/{group_id}/metrics", params={"limit": 2000}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["truncated"], "the group has more trials than one page of metrics"
    return {
        (series["trial_id"], series["name"], step): value
        for series in body["items"]
        for step, value in zip(series["steps"], series["values"], strict=True)
    }


def create_group(base: str, document: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{base}/api/v1/groups", json=document, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def get_group(base: str, group_id: int) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/v1/groups/{group_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(predicate: Any, *, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def logged(log_path: Path, event: str, **fields: Any) -> bool:
    """Whether a JSON log (one object a line, as `hpo` writes it) has `event` with `fields`."""
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and fields.items() <= record.items():
            return True
    return False


class PrecomputeWorker:
    """`hpo worker` in a subprocess, as a user starts it."""

    def __init__(self, database_url: str, *, log_path: Path, poll: float = 0.05) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--poll", str(poll)],
            env={**os.environ, "HPO_DATABASE_URL": database_url, "HPO_LOG_FORMAT": "json"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_started(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.process.poll() is not None or logged(self.log_path, "worker.started"),
            timeout=timeout,
            what="hpo worker to start",
        )
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]

    def stop(self) -> int:
        """Stop it as a supervisor does (SIGTERM); its exit code."""
        self.process.terminate()
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code


class Progress:
    """A counter the client threads bump and the test watches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1

"""`hpo agent` running a real training script (train_script.py) against `hpo serve`."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agent import MetricLineError, parse_metric_line
from tests.conftest import LiveServer

TRAIN = Path(__file__).with_name("train_script.py")


def agent_command(url: str, group_id: int, *options: str, tag: str) -> list[str]:
    return [
        sys.executable, "-m", "app.cli", "agent", str(group_id), "--url", url, *options,
        "--", sys.executable, str(TRAIN), "--case", "{case}", "--tag", tag,
    ]  # fmt: skip


def agent_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HPO_URL", "HPO_TOKEN")}


def leftovers(tag: str) -> list[int]:
    """Processes still alive whose command line carries `tag`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if tag.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def create_group(http: httpx.Client, document: dict[str, Any]) -> int:
    created = http.post("/api/v1/groups", json=document)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def trials_by_case(http: httpx.Client, group_id: int) -> dict[str, dict[str, Any]]:
    items = http.get(f"/api/v1/groups/{group_id}/trials").json()["items"]
    return {t["params"]["case"]: t for t in items}


@pytest.fixture
def http(pg_server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=pg_server.url, timeout=30) as client:
        yield client


def test_three_at_a_time_with_a_crash_and_a_stop_by_the_service(
    pg_server: LiveServer, http: httpx.Client
) -> None:
    # `slow` reports a loss ten times the others' at each step: the diff rule stops it.
    group_id = create_group(
        http,
        {
            "objective": {"name": "loss", "optimization": "minimize"},
            "hptuning": {
                "concurrency": 3,
                "matrix": {"case": {"values": ["good-a", "crash", "slow", "good-b"]}},
                "early_stopping": [
                    {
                        "metric": "loss",
                        "value": 0,
                        "optimization": "minimize",
                        "policy": {"kind": "diff", "percent": 50, "evaluation_interval": 1},
                    }
                ],
            },
        },
    )
    tag = uuid.uuid4().hex
    result = subprocess.run(
        agent_command(pg_server.url, group_id, "-n", "3", tag=tag),
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"group {group_id} is done" in result.stdout

    trials = trials_by_case(http, group_id)
    assert {case: t["status"] for case, t in trials.items()} == {
        "good-a": "succeeded",
        "good-b": "succeeded",
        "crash": "failed",
        "slow": "stopped",
    }
    # Final values come from the metric lines: the last loss of each run.
    assert trials["good-a"]["values"] == trials["good-b"]["values"] == {"loss": 0.25}
    assert trials["good-a"]["objective"] == 0.25
    assert trials["crash"]["values"] == {"loss": 1.0}
    assert trials["slow"]["values"] == {"loss": 10.0}
    assert "diff rule" in trials["slow"]["stop_reason"]
    assert f"trial {trials['crash']['id']} failed" in result.stdout
    assert "exit code 1" in result.stdout
    assert "RuntimeError: the model diverged" in result.stdout  # stderr is echoed too

    group = http.get(f"/api/v1/groups/{group_id}").json()
    assert group["status"] == "done"
    assert group["counts"]["running"] == 0 and group["counts"]["pending"] == 0
    assert group["best_trial"]["objective"] == 0.25
    assert leftovers(tag) == []


def test_ctrl_c_reports_running_trials_stopped(pg_server: LiveServer, http: httpx.Client) -> None:
    # A three-second lease: only heartbeats keep these quiet, long runs alive.
    group_id = create_group(
        http,
        {
            "lease_seconds": 3,
            "objective": {"name": "loss", "optimization": "minimize"},
            "hptuning": {
                "concurrency": 2,
                "matrix": {"case": {"values": ["long-1", "stubborn", "long-2"]}},
            },
        },
    )
    tag = uuid.uuid4().hex
    options = ("-n", "2", "--grace", "1", "--heartbeat", "0.5", "-q")
    command = agent_command(pg_server.url, group_id, *options, tag=tag)
    # The first metric line would come after 8 s: the runs are silent until then.
    agent = subprocess.Popen(
        [*command, "--pause", "8"],
        env=agent_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(leftovers(tag)) < 2:
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, "the commands did not start"
            time.sleep(0.1)
        time.sleep(3.5)  # longer than the lease
        running = http.get(f"/api/v1/groups/{group_id}/trials", params={"status": "running"})
        leases = [datetime.fromisoformat(t["lease_expires_at"]) for t in running.json()["items"]]
        assert len(leases) == 2
        assert all(lease > datetime.now(UTC) for lease in leases)  # heartbeats extended them

        agent.send_signal(signal.SIGINT)
        output, _ = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 130, output
    assert "interrupted" in output

    trials = http.get(f"/api/v1/groups/{group_id}/trials").json()["items"]
    assert sorted(t["params"]["case"] for t in trials) == ["long-1", "stubborn"]
    assert [t["status"] for t in trials] == ["stopped", "stopped"]
    group = http.get(f"/api/v1/groups/{group_id}").json()
    assert group["counts"]["running"] == 0
    assert leftovers(tag) == []  # the stubborn one ignored SIGTERM and got SIGKILL


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hpo: loss=0.31 acc=0.9 step=3", ({"loss": 0.31, "acc": 0.9}, 3)),
        ("  hpo: loss=1e-3, acc=1\n", ({"loss": 0.001, "acc": 1.0}, None)),
        ("epoch 3: loss=0.31", None),
        ("loss: hpo: x=1", None),
    ],
)
def test_metric_lines(line: str, expected: Any) -> None:
    assert parse_metric_line(line) == expected


@pytest.mark.parametrize(
    "line",
    ["hpo:", "hpo: loss", "hpo: loss=abc", "hpo: loss=nan", "hpo: step=2", "hpo: x=1 step=-1"],
)
def test_malformed_metric_lines(line: str) -> None:
    with pytest.raises(MetricLineError):
        parse_metric_line(line)

"""`hpo group ...` through its real entry point (`python -m app.cli`) against `hpo serve`."""

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, free_port

TRAIN = Path(__file__).with_name("train_script.py")
TRIAL_STATUSES = ("pending", "running", "succeeded", "failed", "stopped", "expired")

POLYAXONFILE = """\
version: 1
kind: group
name: cli-grid
objective: {name: loss, optimization: minimize}
hptuning:
  concurrency: 6
  matrix:
    lr: {values: [0.1, 0.01, 0.001]}
    units: {values: [16, 32]}
  early_stopping:
    - {metric: loss, value: 0.001, optimization: minimize}
run:
  cmd: python train.py --lr={{ lr }} --units={{ units }}
"""

BARE_SECTION = """\
random_search: {n_experiments: 5}
seed: 7
matrix:
  dropout: {uniform: '0:0.5'}
"""

BAD_FILE = """\
hptuning:
  matrix:
    lr: {uniform: 'x:1'}
    units: {values: 3}
"""


def hpo(url: str, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """`hpo ARGS...` as a user runs it, pointed at `url` through HPO_URL."""
    environ = {k: v for k, v in os.environ.items() if k not in ("HPO_TOKEN", "COLUMNS")}
    environ |= {"HPO_URL": url, "PYTHONIOENCODING": "utf-8", **env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def table_trial_ids(text: str) -> list[int]:
    """The trial ids of a `group show` table, top to bottom."""
    ids = []
    for line in text.splitlines():
        words = re.findall(r"[\w.\-]+", line)
        if len(words) >= 2 and words[0].isdigit() and words[1] in TRIAL_STATUSES:
            ids.append(int(words[0]))
    return ids


@pytest.fixture(scope="module")
def url(pg_server: LiveServer) -> str:
    return pg_server.url


def test_create_prints_the_definition_like_polyaxon_check(url: str, tmp_path: Path) -> None:
    out = ok(hpo(url, "group", "create", "-f", str(write(tmp_path, "group.yml", POLYAXONFILE))))
    assert "Creating an experiment group with the following definition:" in out
    assert re.search(r"Search algorithm\s+grid", out)
    assert re.search(r"Concurrency\s+6 concurrent runs", out)
    assert re.search(r"Early stopping\s+activated", out)
    assert re.search(r"Experiments to create\s+6", out)
    assert re.search(r"Objective\s+loss \(minimize\)", out)
    assert re.search(r"Name\s+cli-grid", out)
    assert re.search(r"^Experiment group \d+ was created$", out, re.MULTILINE)


def test_create_with_name_and_objective_options(url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "section.yaml", BARE_SECTION)
    out = ok(hpo(url, "group", "create", "-f", str(path), "--name", "bare", "--objective", "acc"))
    assert re.search(r"Concurrency\s+sequential runs", out)
    assert re.search(r"Early stopping\s+deactivated", out)
    assert re.search(r"Experiments to create\s+5", out)

    args = ["group", "create", "-f", str(path), "--objective", "loss:minimize", "--json"]
    group = json.loads(ok(hpo(url, *args)))
    assert group["algorithm"] == "random"
    assert group["objective"] == {"name": "loss", "optimization": "minimize"}
    assert group["name"] is None


def test_an_invalid_file_lists_each_faulty_path_and_exits_2(url: str, tmp_path: Path) -> None:
    result = hpo(url, "group", "create", "-f", str(write(tmp_path, "bad.yml", BAD_FILE)))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.strip().startswith("hptuning.matrix.lr.uniform: ") for line in lines)
    assert any(line.strip().startswith("hptuning.matrix.units.values: ") for line in lines)


def test_list_show_stop_and_export(url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "group.yml", POLYAXONFILE.replace("cli-grid", "cli-life"))
    group = json.loads(ok(hpo(url, "group", "create", "-f", str(path), "--json")))
    group_id = group["id"]

    # Four trials handed out; three finish with losses out of order, one keeps running.
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post(
            f"/api/v1/groups/{group_id}/suggestions", json={"count": 4, "worker_id": "test"}
        ).json()
        a, b, c, running = (t["id"] for t in answer["trials"])
        for trial_id, loss in ((a, 0.5), (b, 0.2), (c, 0.9)):
            http.post(f"/api/v1/trials/{trial_id}/metrics", json={"values": {"loss": loss}})
            done = http.post(
                f"/api/v1/trials/{trial_id}/complete",
                json={"status": "succeeded", "values": {"loss": loss, "acc": 1 - loss}},
            )
            assert done.status_code == 200, done.text

    # The read-only commands, side by side: each is a Python start-up of its own.
    target = tmp_path / "trials.json"
    gid = str(group_id)
    commands = {
        "list": ["group", "list", "--json"],
        "done": ["group", "list", "--status", "done", "--json"],
        "table": ["group", "list"],
        "show": ["group", "show", gid, "--json"],
        "text": ["group", "show", gid],
        "csv": ["group", "export", gid, "--format", "csv"],
        "json": ["group", "export", gid, "--format", "json", "-o", str(target)],
    }
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(hpo, url, *args) for name, args in commands.items()}
        out = {name: ok(future.result()) for name, future in futures.items()}

    listed = json.loads(out["list"])
    assert {"id": group_id, "status": "running"}.items() <= next(
        g for g in listed if g["id"] == group_id
    ).items()
    done_only = json.loads(out["done"])
    assert all(g["status"] == "done" for g in done_only)
    assert group_id not in [g["id"] for g in done_only]
    assert re.search(rf"{group_id}\s+\W\s+cli-life\s+\W\s+grid\s+\W\s+running", out["table"])

    shown = json.loads(out["show"])
    assert [t["id"] for t in shown["trials"]] == [b, a, c, running]
    assert shown["best_trial"]["id"] == b
    assert shown["counts"]["succeeded"] == 3 and shown["counts"]["running"] == 1
    text = out["text"]
    assert table_trial_ids(text) == [b, a, c, running]
    assert re.search(r"Status\s+running", text)
    assert re.search(rf"Best trial\s+{b}: 0.2", text)
    for column in ("loss", "acc", "lr", "units"):
        assert column in text

    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [int(r["id"]) for r in rows] == sorted([a, b, c, running])
    assert {r["value.loss"] for r in rows} == {"0.5", "0.2", "0.9", ""}
    assert {"param.lr", "param.units", "value.acc"} <= set(rows[0])
    assert len(json.loads(target.read_text())) == 4

    stopped = json.loads(ok(hpo(url, "group", "stop", gid, "--json")))
    assert stopped["status"] == "stopped"
    assert stopped["counts"]["running"] == 1  # it hears should_stop at its next report


def test_errors_of_the_service_and_of_the_connection(url: str) -> None:
    missing = hpo(url, "group", "show", "987654")
    assert missing.returncode == 1
    assert "987654" in missing.stderr and "404" in missing.stderr

    nowhere = f"http://127.0.0.1:{free_port()}"
    refused = hpo(nowhere, "group", "list")
    assert refused.returncode == 1
    assert f"cannot reach the hpo service at {nowhere}" in refused.stderr


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'{"items": [], "next_cursor": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_token_goes_as_a_bearer_header(recorder: str) -> None:
    assert json.loads(ok(hpo(recorder, "group", "list", "--json", HPO_TOKEN="s3cret"))) == []
    ok(hpo("http://127.0.0.1:1", "group", "list", "--url", recorder, "--token", "other"))
    assert _Recorder.seen == ["Bearer s3cret", "Bearer other"]


def test_create_and_run_in_one_go(url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tiny.yml",
        "objective: {name: loss, optimization: minimize}\n"
        "hptuning:\n  concurrency: 2\n  matrix:\n    case: {values: [good-1, good-2, good-3]}\n",
    )
    result = hpo(
        url,
        "group", "create", "-f", str(path), "--run", "-n", "2", "--",
        sys.executable, str(TRAIN), "--case", "{case}", "--steps", "2", "--pause", "0.1",
    )  # fmt: skip
    out = ok(result)
    group_id = int(re.search(r"Experiment group (\d+) was created", out).group(1))
    assert f"group {group_id} is done" in out
    assert "hpo: loss=0.5 step=2" in out  # the commands' output, echoed

    shown = json.loads(ok(hpo(url, "group", "show", str(group_id), "--json")))
    assert shown["status"] == "done"
    assert [t["status"] for t in shown["trials"]] == ["succeeded"] * 3
    assert [t["values"] for t in shown["trials"]] == [{"loss": 0.5}] * 3


def test_projects_and_keys_from_the_command_line(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    admin = "cli-admin-key-0123456789abcdef"
    server = LiveServer(
        postgres_url,
        log_path=tmp_path_factory.mktemp("cli-auth") / "server.log",
        env={"HPO_ADMIN_KEY": admin},
    )
    try:
        made = hpo(server.url, "project", "create", "nlp", HPO_TOKEN=admin)
        assert made.returncode == 0 and "Created project nlp" in made.stdout
        key = hpo(server.url, "key", "create", "nlp", "--role", "write", HPO_TOKEN=admin)
        assert key.returncode == 0 and "not shown again" in key.stderr
        secret = key.stdout.strip()
        assert secret.startswith("hpo_")
        spec = tmp_path_factory.mktemp("cli-auth-spec") / "bare.yml"
        spec.write_text(BARE_SECTION)
        group = hpo(server.url, "group", "create", "-f", str(spec), "--json", HPO_TOKEN=secret)
        assert group.returncode == 0, group.stderr
        listed = hpo(server.url, "group", "list", "--json", HPO_TOKEN=secret)
        assert [g["id"] for g in json.loads(listed.stdout)] == [json.loads(group.stdout)["id"]]
        # Without a key, or with a project key on the admin's commands: refused, exit 1.
        anonymous = hpo(server.url, "group", "list")
        assert anonymous.returncode == 1 and "HTTP 401" in anonymous.stderr
        assert hpo(server.url, "project", "list", HPO_TOKEN=secret).returncode == 1
        keys = hpo(server.url, "key", "list", "nlp", "--json", HPO_TOKEN=admin)
        key_id = json.loads(keys.stdout)["items"][0]["key_id"]
        assert secret.split("_")[1] == key_id and secret not in keys.stdout
        revoked = hpo(server.url, "key", "revoke", key_id, HPO_TOKEN=admin)
        assert revoked.returncode == 0 and key_id in revoked.stdout
        after = hpo(server.url, "group", "list", HPO_TOKEN=secret)
        assert after.returncode == 1 and "revoked" in after.stderr
    finally:
        server.stop()

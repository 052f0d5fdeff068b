"""The commands docker-compose.yml and the Dockerfile run, run here against the local PostgreSQL.

No Docker engine runs on the test machines, so the containers themselves are
not built; but every command they would run is, with the environment the
compose file gives it (the database URL pointed at the test database), so
neither file can rot unseen.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import yaml

from tests.conftest import ADMIN_URL, _libpq, free_port

ROOT = Path(__file__).resolve().parents[2]


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def dockerfile_instruction(name: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return json.loads(line.split("CMD", 1)[1] if name == "HEALTHCHECK" else line[len(name) :])


def command(argv: list[str]) -> list[str]:
    # `hpo` is the console script; run it as the module it points to, in this interpreter.
    assert argv[0] in ("hpo", "python"), argv
    return (
        [sys.executable, "-m", "app.cli", *argv[1:]]
        if argv[0] == "hpo"
        else [sys.executable, *argv[1:]]
    )


def service_env(service: dict, database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, **{k: str(v) for k, v in service.get("environment", {}).items()}}
    assert env["HPO_DATABASE_URL"].startswith("postgresql+psycopg://"), env["HPO_DATABASE_URL"]
    return env | {"HPO_DATABASE_URL": database_url} | extra


def test_compose_and_dockerfile_commands_run(tmp_path: Path) -> None:
    name = f"hpo_compose_{os.getpid()}"
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/[^/]*$", f"/{name}", ADMIN_URL)
    services = compose_services()
    assert set(services) >= {"db", "migrate", "api", "worker"}
    assert dockerfile_instruction("CMD") == ["hpo", "serve"]
    processes = []
    try:
        # 1. The one-shot migration the API waits for.
        migrate = services["migrate"]
        done = subprocess.run(
            command(migrate["command"]),
            env=service_env(migrate, url),
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]

        # 2. The API, as compose starts it, on a free port instead of 8000.
        api = services["api"]
        port = free_port()
        env = service_env(api, url, HPO_PORT=str(port), HPO_HOST="127.0.0.1")
        assert env["HPO_MIGRATE_ON_START"] == "false"
        log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed below
        processes.append(subprocess.Popen(command(api["command"]), env=env, stdout=log, stderr=log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()[-2000:]
            time.sleep(0.3)

        # 3. The Dockerfile's HEALTHCHECK, against that API.
        health = dockerfile_instruction("HEALTHCHECK")
        checked = subprocess.run(
            [sys.executable, *health[1:]], env={**os.environ, "HPO_PORT": str(port)}, timeout=10
        )
        assert checked.returncode == 0

        # 4. The worker: it starts and stops cleanly on SIGTERM.
        worker = services["worker"]
        wlog = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
        processes.append(
            subprocess.Popen(
                command(worker["command"]), env=service_env(worker, url), stdout=wlog, stderr=wlog
            )
        )
        deadline = time.monotonic() + 60
        while b"worker.started" not in (tmp_path / "worker.log").read_bytes():
            assert processes[-1].poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.2)
        processes[-1].send_signal(signal.SIGTERM)
        assert processes[-1].wait(timeout=15) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""Projects and API keys, over HTTP on PostgreSQL: each team sees and changes its own only."""

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import make_client

ADMIN_KEY = "admin-key-for-the-tests-0123456789"
SPEC = {"hptuning": {"matrix": {"lr": {"values": [0.1, 0.01, 0.001, 0.0001]}}, "concurrency": 2}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def service(postgres_url: str) -> Iterator[TestClient]:
    with make_client(postgres_url, admin_key=ADMIN_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def keys(service: TestClient) -> dict[str, str]:
    """Two projects, `red` and `blue`; a write and a read key of red, a write key of blue."""
    admin = bearer(ADMIN_KEY)
    made = {}
    for project in ("red", "blue"):
        response = service.post("/api/v1/projects", json={"name": project}, headers=admin)
        assert response.status_code == 201, response.text
    for label, project, role in [
        ("red", "red", "write"),
        ("red_read", "red", "read"),
        ("blue", "blue", "write"),
    ]:
        response = service.post(
            f"/api/v1/projects/{project}/keys", json={"role": role, "name": label}, headers=admin
        )
        assert response.status_code == 201, response.text
        made[label] = response.json()["key"]
    return made


@pytest.fixture(scope="module")
def blue_group(service: TestClient, keys: dict[str, str]) -> dict[str, Any]:
    """A group of project blue with one running trial and one metric reported."""
    auth = bearer(keys["blue"])
    group = service.post("/api/v1/groups", json=SPEC, headers=auth).json()
    trial = service.post(
        f"/api/v1/groups/{group['id']}/suggestions", json={"count": 1}, headers=auth
    ).json()["trials"][0]
    reported = service.post(
        f"/api/v1/trials/{trial['id']}/metrics", json={"values": {"loss": 0.5}}, headers=auth
    )
    assert reported.status_code == 200
    return {"group": group, "trial": trial}


def test_a_request_without_a_valid_key_is_refused(service: TestClient, keys: dict) -> None:
    missing = service.get("/api/v1/groups")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.headers["content-type"] == "application/problem+json"
    for wrong in [
        "nonsense",
        "hpo_0000000000000000_secret",
        keys["red"][:-2] + "xx",
        ADMIN_KEY[:-1],
    ]:
        assert service.get("/api/v1/groups", headers=bearer(wrong)).status_code == 401
    # Health and metrics stay open, for probes and scrapers.
    assert service.get("/healthz").status_code == 200


def test_who_am_i(service: TestClient, keys: dict[str, str]) -> None:
    me = service.get("/api/v1/me", headers=bearer(keys["red_read"])).json()
    assert me["role"] == "read" and me["project"] == "red" and me["open"] is False
    admin = service.get("/api/v1/me", headers=bearer(ADMIN_KEY)).json()
    assert admin["role"] == "admin" and admin["project"] is None


def _requests_naming(group_id: int, trial_id: int) -> list[tuple[str, str, Any]]:
    """One valid request for every route of the API that names a group or a trial."""
    bodies: dict[tuple[str, str], Any] = {
        ("post", "/api/v1/groups/{group_id}/suggestions"): {"count": 1},
        ("post", "/api/v1/groups/{group_id}/trials"): {"params": {"lr": 0.1}},
        ("post", "/api/v1/trials/{trial_id}/metrics"): {"values": {"loss": 0.1}},
        ("post", "/api/v1/trials/{trial_id}/complete"): {"status": "succeeded"},
        ("post", "/api/v1/trials/{trial_id}/heartbeat"): {},
    }
    return [
        (method, path, bodies.get((method, path)))
        for path, operations in _paths().items()
        if "{group_id}" in path or "{trial_id}" in path
        for method in operations
    ]


def _paths() -> dict[str, Any]:
    from app.main import create_app

    return create_app().openapi()["paths"]


def test_every_route_hides_another_projects_group_and_trial(
    service: TestClient, keys: dict[str, str], blue_group: dict[str, Any]
) -> None:
    group_id, trial_id = blue_group["group"]["id"], blue_group["trial"]["id"]
    requests = _requests_naming(group_id, trial_id)
    assert len(requests) >= 12  # every group and trial route, not a handful
    for key in (keys["red"], keys["red_read"]):
        for method, path, body in requests:
            url = path.format(group_id=group_id, trial_id=trial_id)
            response = service.request(method, url, json=body, headers=bearer(key))
            assert response.status_code == 404, (method, url, response.status_code)
            what = "group" if "{group_id}" in path else "trial"
            ident = group_id if what == "group" else trial_id
            assert response.json()["detail"] == f"{what} {ident} does not exist"
    # A group that does not exist at all gets the very same answer.
    missing = service.get("/api/v1/groups/999999", headers=bearer(keys["red"]))
    hidden = service.get(f"/api/v1/groups/{group_id}", headers=bearer(keys["red"]))
    assert missing.json()["title"] == hidden.json()["title"]
    # Nothing of blue's changed: the group runs, its trial runs, its metric is there.
    auth = bearer(keys["blue"])
    group = service.get(f"/api/v1/groups/{group_id}", headers=auth).json()
    assert group["status"] == "running" and group["counts"]["running"] == 1
    assert group["counts"]["pending"] == 0
    trial = service.get(f"/api/v1/trials/{trial_id}", headers=auth).json()
    assert trial["status"] == "running"
    series = service.get(f"/api/v1/trials/{trial_id}/metrics", headers=auth).json()
    assert series["items"][0]["values"] == [0.5]


def test_lists_show_a_projects_own_groups_only(
    service: TestClient, keys: dict[str, str], blue_group: dict[str, Any]
) -> None:
    red = service.post("/api/v1/groups", json=SPEC, headers=bearer(keys["red"])).json()
    red_ids = {
        g["id"] for g in service.get("/api/v1/groups", headers=bearer(keys["red"])).json()["items"]
    }
    assert red["id"] in red_ids and blue_group["group"]["id"] not in red_ids
    # Naming another project does not help a project key.
    other = service.get("/api/v1/groups", params={"project": "blue"}, headers=bearer(keys["red"]))
    assert other.status_code == 404
    # The admin sees every project, or the one it names.
    everything = service.get("/api/v1/groups", headers=bearer(ADMIN_KEY)).json()["items"]
    assert {red["id"], blue_group["group"]["id"]} <= {g["id"] for g in everything}
    blue_only = service.get("/api/v1/groups", params={"project": "blue"}, headers=bearer(ADMIN_KEY))
    assert {g["project_id"] for g in blue_only.json()["items"]} == {
        blue_group["group"]["project_id"]
    }


def test_a_read_key_reads_and_changes_nothing(service: TestClient, keys: dict[str, str]) -> None:
    red = service.post("/api/v1/groups", json=SPEC, headers=bearer(keys["red"])).json()
    read = bearer(keys["red_read"])
    assert service.get(f"/api/v1/groups/{red['id']}", headers=read).status_code == 200
    for method, url, body in [
        ("post", "/api/v1/groups", SPEC),
        ("post", f"/api/v1/groups/{red['id']}/suggestions", {"count": 1}),
        ("post", f"/api/v1/groups/{red['id']}/stop", None),
        ("delete", f"/api/v1/groups/{red['id']}", None),
    ]:
        response = service.request(method, url, json=body, headers=read)
        assert response.status_code == 403, (method, url)
    after = service.get(f"/api/v1/groups/{red['id']}", headers=read).json()
    assert after["status"] == "created" and after["proposed_trials"] == 0


def test_only_the_admin_manages_projects_and_keys(service: TestClient, keys: dict) -> None:
    for key in (keys["red"], keys["red_read"]):
        assert service.get("/api/v1/projects", headers=bearer(key)).status_code == 403
        made = service.post(
            "/api/v1/projects/red/keys", json={"role": "write"}, headers=bearer(key)
        )
        assert made.status_code == 403
    again = service.post("/api/v1/projects", json={"name": "red"}, headers=bearer(ADMIN_KEY))
    assert again.status_code == 409
    bad = service.post("/api/v1/projects", json={"name": "Red Team"}, headers=bearer(ADMIN_KEY))
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "name"
    role = service.post(
        "/api/v1/projects/red/keys", json={"role": "owner"}, headers=bearer(ADMIN_KEY)
    )
    assert role.status_code == 422 and role.json()["errors"][0]["path"] == "role"
    nowhere = service.post(
        "/api/v1/projects/green/keys", json={"role": "read"}, headers=bearer(ADMIN_KEY)
    )
    assert nowhere.status_code == 404


def test_a_revoked_key_is_refused_from_the_next_request_on(
    service: TestClient, keys: dict[str, str]
) -> None:
    admin = bearer(ADMIN_KEY)
    made = service.post("/api/v1/projects/red/keys", json={"role": "write"}, headers=admin).json()
    assert service.get("/api/v1/groups", headers=bearer(made["key"])).status_code == 200
    revoked = service.delete(f"/api/v1/keys/{made['key_id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert service.get("/api/v1/groups", headers=bearer(made["key"])).status_code == 401
    # Revoking twice is harmless; the listing shows it revoked, and never a secret.
    assert service.delete(f"/api/v1/keys/{made['key_id']}", headers=admin).status_code == 200
    listed = service.get("/api/v1/projects/red/keys", headers=admin).json()["items"]
    mine = [k for k in listed if k["key_id"] == made["key_id"]]
    assert mine[0]["revoked_at"] is not None and "key" not in mine[0]
    assert service.delete("/api/v1/keys/ffffffffffffffff", headers=admin).status_code == 404


def test_keys_are_stored_hashed(postgres_url: str, keys: dict[str, str]) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        stored = " ".join(
            str(value) for row in conn.execute(text("SELECT * FROM api_keys")) for value in row
        )
    engine.dispose()
    for key in keys.values():
        secret = key.split("_", 2)[2]
        assert secret not in stored


def test_idempotency_keys_of_two_projects_do_not_meet(
    service: TestClient, keys: dict[str, str]
) -> None:
    # Both teams happen to pick the same key for the same route: each gets its own group.
    same = {"Idempotency-Key": "create-nightly-search"}
    red = service.post("/api/v1/groups", json=SPEC, headers=bearer(keys["red"]) | same).json()
    blue = service.post("/api/v1/groups", json=SPEC, headers=bearer(keys["blue"]) | same).json()
    assert red["id"] != blue["id"] and red["project_id"] != blue["project_id"]
    # And each team's retry still gets its own first answer back.
    retry = service.post("/api/v1/groups", json=SPEC, headers=bearer(keys["red"]) | same).json()
    assert retry["id"] == red["id"]


def test_an_open_service_says_so(pg_client: TestClient) -> None:
    me = pg_client.get("/api/v1/me").json()
    assert me == {"role": "admin", "project": None, "key_id": None, "open": True}


def test_serve_refuses_to_run_open_off_loopback(tmp_path: Any) -> None:
    env = {"PATH": "/usr/bin:/bin", "HPO_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "HPO_ADMIN_KEY" in done.stderr and "HPO_ALLOW_OPEN" in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything

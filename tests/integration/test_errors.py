"""Bad input gets a clear problem (422 with paths, 404, 409, 413), never a 500."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.integration.helpers import create_group, group, suggest

GRID = {"matrix": {"lr": {"values": [0.1, 0.01]}}}


def _paths(response) -> list[str]:  # noqa: ANN001
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["path"] for e in response.json()["errors"]]


def test_bad_matrix_option_names_its_path(client: TestClient) -> None:
    response = client.post(
        "/api/v1/groups",
        json={
            "hptuning": {
                "random_search": {"n_experiments": 3},
                "matrix": {"lr": {"uniform": "a:b"}},
            }
        },
    )
    assert response.status_code == 422
    assert _paths(response) == ["hptuning.matrix.lr.uniform"]


def test_yaml_body_errors_name_their_paths(client: TestClient) -> None:
    body = "matrix:\n  lr:\n    uniform: 0:1\n  units:\n    values: [1, 2]\n"
    response = client.post(
        "/api/v1/groups", content=body, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 422
    assert _paths(response) == ["hptuning.matrix.lr"]
    assert "grid search" in response.json()["detail"]


def test_yaml_body_that_is_not_yaml(client: TestClient) -> None:
    response = client.post(
        "/api/v1/groups", content="matrix: [unclosed", headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 422
    assert _paths(response) == [""]


def test_random_search_needs_n_experiments(client: TestClient) -> None:
    response = client.post(
        "/api/v1/groups",
        json={"hptuning": {"random_search": {}, "matrix": {"x": {"uniform": [0, 1]}}}},
    )
    assert response.status_code == 422
    assert _paths(response) == ["hptuning.random_search.n_experiments"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"count": 0}, "count"),
        ({"count": "many"}, "count"),
        ({"count": 1, "wait_seconds": -1}, "wait_seconds"),
        ({"count": 1, "colour": "red"}, "colour"),
    ],
)
def test_bad_suggestion_requests(client: TestClient, body: dict, path: str) -> None:
    g = create_group(client, GRID)
    response = client.post(f"/api/v1/groups/{g['id']}/suggestions", json=body)
    assert response.status_code == 422
    assert _paths(response) == [path]


def test_metric_values_must_be_finite_numbers(client: TestClient) -> None:
    g = create_group(client, GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    url = f"/api/v1/trials/{trial['id']}/metrics"
    for bad in (
        '{"values": {"loss": NaN}}',
        '{"values": {"loss": Infinity}}',
        '{"values": {"loss": "x"}}',
    ):
        response = client.post(url, content=bad, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, bad
        assert _paths(response) == ["values.loss"]
    assert client.post(url, json={"values": {}}).status_code == 422


def test_unknown_ids_are_404(client: TestClient) -> None:
    for method, url in [
        ("GET", "/api/v1/groups/999999"),
        ("POST", "/api/v1/groups/999999/stop"),
        ("DELETE", "/api/v1/groups/999999"),
        ("GET", "/api/v1/groups/999999/trials"),
        ("GET", "/api/v1/groups/999999/export"),
        ("GET", "/api/v1/trials/999999"),
        ("POST", "/api/v1/trials/999999/heartbeat"),
    ]:
        response = client.request(method, url)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["status"] == 404
    assert client.post("/api/v1/groups/999999/suggestions", json={"count": 1}).status_code == 404
    assert (
        client.post("/api/v1/trials/999999/complete", json={"status": "failed"}).status_code == 404
    )
    assert (
        client.post("/api/v1/trials/999999/metrics", json={"values": {"a": 1}}).status_code == 404
    )


def test_stopping_a_finished_group_is_a_conflict(client: TestClient) -> None:
    g = create_group(client, {"matrix": {"lr": {"values": [0.1]}}})
    (trial,) = suggest(client, g["id"])["trials"]
    client.post(f"/api/v1/trials/{trial['id']}/complete", json={"status": "succeeded"})
    assert group(client, g["id"])["status"] == "done"
    assert client.post(f"/api/v1/groups/{g['id']}/stop").status_code == 409


def test_oversized_body_is_413(postgres_url: str) -> None:
    with make_client(postgres_url, max_body_bytes=2048) as small:
        response = small.post(
            "/api/v1/groups", content=b"x" * 5000, headers={"Content-Type": "application/yaml"}
        )
        assert response.status_code == 413
        chunked = small.post(
            "/api/v1/groups",
            content=iter([b"matrix: {}\n", b"#" * 5000]),
            headers={"Content-Type": "application/yaml"},
        )
        assert chunked.status_code == 413


GARBAGE = [b"", b"{", b"[]", b"null", b'"text"', b"\xff\xfe", b'{"count": 1e400}', b"{" * 5000]


@pytest.mark.parametrize("payload", GARBAGE)
def test_garbage_never_gets_a_500_nor_changes_anything(client: TestClient, payload: bytes) -> None:
    g = create_group(client, GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    before = group(client, g["id"])
    for url in [
        "/api/v1/groups",
        f"/api/v1/groups/{g['id']}/suggestions",
        f"/api/v1/trials/{trial['id']}/metrics",
        f"/api/v1/trials/{trial['id']}/complete",
        f"/api/v1/trials/{trial['id']}/heartbeat",
        f"/api/v1/groups/{g['id']}/stop",
    ]:
        for content_type in ("application/json", "application/yaml"):
            response = client.post(url, content=payload, headers={"Content-Type": content_type})
            assert response.status_code < 500, (url, payload, response.text)
    after = group(client, g["id"])
    if after["status"] != "stopped":  # the stop route takes no body: it may have run
        assert after["counts"] == before["counts"]
    assert client.get(f"/api/v1/trials/{trial['id']}").json()["params"] == trial["params"]


def test_every_limit_is_a_clear_422_naming_its_field(client: TestClient) -> None:
    g = create_group(client, GRID)
    over_count = client.post(f"/api/v1/groups/{g['id']}/suggestions", json={"count": 101})
    assert over_count.status_code == 422 and _paths(over_count) == ["count"]
    long_worker = client.post(
        f"/api/v1/groups/{g['id']}/suggestions", json={"count": 1, "worker_id": "w" * 201}
    )
    assert _paths(long_worker) == ["worker_id"]
    (trial,) = suggest(client, g["id"])["trials"]
    url = f"/api/v1/trials/{trial['id']}/metrics"
    long_name = client.post(url, json={"values": {"m" * 201: 1.0}})
    assert long_name.status_code == 422 and _paths(long_name)[0].startswith("values.")
    many = client.post(url, json={"values": {f"m{i}": 1.0 for i in range(101)}})
    assert many.status_code == 422 and _paths(many) == ["values"]
    page = client.get("/api/v1/groups", params={"limit": 1001})
    assert page.status_code == 422 and _paths(page) == ["query.limit"]
    wide = {f"p{i}": {"values": [1, 2]} for i in range(1001)}
    too_wide = client.post("/api/v1/groups", json={"hptuning": {"matrix": wide}})
    assert too_wide.status_code == 422 and _paths(too_wide) == ["hptuning.matrix"]
    named = client.post("/api/v1/groups", json={"name": "n" * 201, **GRID})
    assert named.status_code == 422 and _paths(named) == ["name"]
    # None of it changed the group: one trial out, as before.
    assert client.get(f"/api/v1/groups/{g['id']}").json()["counts"]["running"] == 1

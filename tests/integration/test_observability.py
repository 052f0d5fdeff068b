"""/metrics in Prometheus format, added up over the server processes; /healthz and /readyz."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.db import migrate
from tests.conftest import LiveServer


def samples(server: LiveServer) -> dict[str, list]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def test_metrics_count_requests_suggestions_and_trials(pg_server: LiveServer) -> None:
    spec = {"concurrency": 5, "matrix": {"a": {"values": [1, 2, 3, 4, 5]}}}
    group = httpx.post(f"{pg_server.url}/api/v1/groups", json={"hptuning": spec}).json()
    with httpx.Client(base_url=pg_server.url) as http:
        # Several connections, so both server processes are likely to answer some.
        for _ in range(5):
            with httpx.Client(base_url=pg_server.url) as fresh:
                fresh.post(f"/api/v1/groups/{group['id']}/suggestions", json={"count": 1})
        http.get("/api/v1/groups/999999")
    metrics = samples(pg_server)
    requests = metrics["hpo_http_requests"]
    suggest_calls = sum(
        s.value
        for s in requests
        if s.labels["route"] == "/api/v1/groups/{group_id}/suggestions"
        and s.labels["status"] == "200"
    )
    assert suggest_calls >= 5
    assert any(
        s.labels["route"] == "/api/v1/groups/{group_id}" and s.labels["status"] == "404"
        for s in requests
    )
    served = {s.labels["algorithm"]: s.value for s in metrics["hpo_suggestions_served"]}
    assert served["grid"] >= 5
    running = [s.value for s in metrics["hpo_trials"] if s.labels["status"] == "running"]
    assert running and running[0] >= 5
    assert "hpo_http_request_duration_seconds" in metrics
    assert "hpo_suggestion_queue_depth" in metrics
    assert "hpo_lease_expiries" in metrics


def test_health_and_readiness(pg_server: LiveServer) -> None:
    assert httpx.get(f"{pg_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{pg_server.url}/readyz").json()
    assert ready["status"] == "ok" and ready["schema"] == migrate.head_revision()

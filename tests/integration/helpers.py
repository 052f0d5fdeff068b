"""Small typed helpers that drive the API the way a client does."""

from typing import Any

import httpx
from fastapi.testclient import TestClient

Client = TestClient | httpx.Client


def create_group(client: Client, hptuning: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/groups", json={"hptuning": hptuning, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def suggest(client: Client, group_id: int, count: int = 1, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/groups/{group_id}/suggestions", json={"count": count, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def complete(
    client: Client, trial_id: int, values: dict[str, float] | None = None, status: str = "succeeded"
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/trials/{trial_id}/complete", json={"status": status, "values": values}
    )
    assert response.status_code == 200, response.text
    return response.json()


def group(client: Client, group_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/groups/{group_id}")
    assert response.status_code == 200, response.text
    return response.json()


GRID_300 = {
    "concurrency": 32,
    "matrix": {
        "a": {"values": list(range(10))},
        "b": {"range": [0, 10, 1]},
        "c": {"values": ["x", "y", "z"]},
    },
}

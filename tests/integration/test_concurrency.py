"""Many clients, two server processes, one grid: every cell exactly once."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import LiveServer
from tests.integration.helpers import GRID_300


def _worker(base: str, group_id: int) -> list[dict]:
    got = []
    with httpx.Client(base_url=base, timeout=30) as client:
        while True:
            answer = client.post(
                f"/api/v1/groups/{group_id}/suggestions", json={"count": 2, "wait_seconds": 2}
            ).json()
            if answer["group_status"] == "done":
                return got
            for trial in answer["trials"]:
                got.append(trial["params"])
                response = client.post(
                    f"/api/v1/trials/{trial['id']}/complete",
                    json={"status": "succeeded", "values": {"score": trial["params"]["a"]}},
                )
                assert response.status_code == 200, response.text


def test_16_clients_get_each_of_300_cells_exactly_once(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        created = client.post(
            "/api/v1/groups",
            json={"hptuning": GRID_300, "objective": {"name": "score", "optimization": "maximize"}},
        )
        assert created.status_code == 201, created.text
        group_id = created.json()["id"]
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: _worker(live_server.url, group_id), range(16)))
        view = client.get(f"/api/v1/groups/{group_id}").json()
    cells = Counter((p["a"], p["b"], p["c"]) for got in results for p in got)
    assert len(cells) == 300
    assert set(cells.values()) == {1}
    assert view["status"] == "done"
    assert view["counts"]["succeeded"] == 300
    assert view["best_trial"]["params"]["a"] == 9
    assert sum(1 for got in results if got) > 1  # the work really was shared

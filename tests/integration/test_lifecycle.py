"""The trial lifecycle over HTTP, on PostgreSQL and on SQLite."""

import time

from fastapi.testclient import TestClient

from tests.conftest import make_client
from tests.integration.helpers import complete, create_group, group, suggest

SMALL_GRID = {
    "concurrency": 2,
    "matrix": {"lr": {"values": [0.1, 0.01]}, "units": {"values": [8, 16]}},
}


def test_grid_hands_out_cells_in_order_then_finishes(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID, objective={"name": "loss", "optimization": "minimize"})
    assert g["status"] == "created" and g["planned_trials"] == 4 and g["algorithm"] == "grid"
    seen = []
    for expected_loss in (0.4, 0.1, 0.3, 0.2):
        (trial,) = suggest(client, g["id"])["trials"]
        seen.append(trial["params"])
        complete(client, trial["id"], {"loss": expected_loss})
    assert seen == [
        {"lr": 0.1, "units": 8},
        {"lr": 0.1, "units": 16},
        {"lr": 0.01, "units": 8},
        {"lr": 0.01, "units": 16},
    ]
    view = group(client, g["id"])
    assert view["status"] == "done"
    assert view["counts"]["succeeded"] == 4
    assert view["best_trial"]["params"] == {"lr": 0.1, "units": 16}
    answer = suggest(client, g["id"])
    assert answer == {"trials": [], "group_status": "done", "retry_after": None}


def test_grid_order_is_the_order_the_matrix_was_written_in(client: TestClient) -> None:
    # PostgreSQL's jsonb would sort these keys by length ("lr" first); the first key
    # written must stay the slowest, as in Polyaxon and on SQLite.
    matrix = {"batch_size": {"values": [32, 64]}, "lr": {"values": [0.1, 0.01]}}
    g = create_group(client, {"concurrency": 4, "matrix": matrix, "grid_search": {}})
    assert list(g["hptuning"]["matrix"]) == ["batch_size", "lr"]
    assert list(group(client, g["id"])["hptuning"]["matrix"]) == ["batch_size", "lr"]
    trials = suggest(client, g["id"], count=4)["trials"]
    assert [(t["params"]["batch_size"], t["params"]["lr"]) for t in trials] == [
        (32, 0.1),
        (32, 0.01),
        (64, 0.1),
        (64, 0.01),
    ]


def test_a_trial_shows_params_and_metrics_in_the_order_they_were_written(
    client: TestClient,
) -> None:
    # jsonb would give "a" first (shorter keys first); the user wrote "zeta" first.
    matrix = {"zeta": {"values": [1, 2, 3]}, "a": {"uniform": [0, 1]}}
    spec = {"concurrency": 2, "matrix": matrix, "random_search": {"n_experiments": 4}}
    g = create_group(client, spec)
    # The first suggestion starts the group; the second, of a running group, takes
    # PostgreSQL's fast path, which writes its row in its own SQL.
    handed = [suggest(client, g["id"])["trials"][0] for _ in range(2)]
    assert [list(t["params"]) for t in handed] == [["zeta", "a"]] * 2
    for t in handed:
        shown = client.get(f"/api/v1/trials/{t['id']}").json()
        assert list(shown["params"]) == ["zeta", "a"]
    listed = client.get(f"/api/v1/groups/{g['id']}/trials").json()
    assert [list(t["params"]) for t in listed["items"]] == [["zeta", "a"]] * 2
    # Metrics too come back as reported ("acc" would come first in jsonb).
    for t in handed:  # on PostgreSQL through the fast path: the group is not finishing
        done = complete(client, t["id"], {"loss": 0.3, "acc": 0.9})
        assert list(done["params"]) == ["zeta", "a"]
        assert list(done["values"]) == ["loss", "acc"]
        shown = client.get(f"/api/v1/trials/{t['id']}").json()
        assert list(shown["values"]) == ["loss", "acc"]


def test_concurrency_caps_running_trials(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    first = suggest(client, g["id"], count=5)
    assert len(first["trials"]) == 2
    again = suggest(client, g["id"], count=1)
    assert again["trials"] == [] and again["group_status"] == "running"
    assert again["retry_after"] > 0
    complete(client, first["trials"][0]["id"])
    assert len(suggest(client, g["id"], count=5)["trials"]) == 1


def test_random_search_replays_with_the_same_seed(client: TestClient) -> None:
    spec = {
        "seed": 7,
        "concurrency": 10,
        "random_search": {"n_experiments": 6},
        "matrix": {
            "lr": {"loguniform": [-9, -2]},
            "units": {"values": [16, 32, 64]},
            "act": {"pvalues": [["relu", 0.5], ["tanh", 0.5]]},
        },
    }
    one = create_group(client, spec)
    two = create_group(client, spec)
    first = [t["params"] for t in suggest(client, one["id"], count=6)["trials"]]
    second = [t["params"] for t in suggest(client, two["id"], count=3)["trials"]]
    second += [t["params"] for t in suggest(client, two["id"], count=3)["trials"]]
    assert first == second
    assert len({str(p) for p in first}) == 6


def test_random_group_without_seed_stores_one(client: TestClient) -> None:
    g = create_group(
        client, {"random_search": {"n_experiments": 3}, "matrix": {"x": {"uniform": [0, 1]}}}
    )
    assert isinstance(g["seed"], int)


def test_all_discrete_random_space_caps_and_says_so(client: TestClient) -> None:
    g = create_group(
        client,
        {
            "concurrency": 10,
            "random_search": {"n_experiments": 50},
            "matrix": {"a": {"values": [1, 2, 3]}, "b": {"pvalues": [["x", 0.9], ["y", 0.1]]}},
        },
    )
    assert g["planned_trials"] == 6
    assert "6 configurations" in g["warnings"][0]
    params = []
    for _ in range(3):
        params += [t["params"] for t in suggest(client, g["id"], count=10)["trials"]]
        running = client.get(
            f"/api/v1/groups/{g['id']}/trials", params={"status": "running"}
        ).json()
        for t in running["items"]:
            complete(client, t["id"])
    assert len(params) == 6
    assert len({(p["a"], p["b"]) for p in params}) == 6


def test_expired_lease_reoffers_the_configuration(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID | {"concurrency": 1}, lease_seconds=1)
    (lost,) = suggest(client, g["id"], worker_id="w1")["trials"]
    time.sleep(1.3)
    (again,) = suggest(client, g["id"], worker_id="w2")["trials"]
    assert again["params"] == lost["params"]
    assert again["replaces_id"] == lost["id"] and again["attempt"] == 1
    old = client.get(f"/api/v1/trials/{lost['id']}").json()
    assert old["status"] == "expired"
    # The lost worker comes back: it is told to stop, and its report is kept.
    late = client.post(
        f"/api/v1/trials/{lost['id']}/metrics", json={"values": {"loss": 1.0}, "step": 3}
    )
    assert late.status_code == 200 and late.json()["should_stop"] is True
    assert f"trial {again['id']}" in late.json()["reason"]


def test_late_completion_counts_once(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID | {"concurrency": 1}, lease_seconds=1)
    (lost,) = suggest(client, g["id"])["trials"]
    time.sleep(1.3)
    (again,) = suggest(client, g["id"])["trials"]
    complete(client, lost["id"], {"loss": 0.5})  # the lost worker finishes first
    answer = client.post(f"/api/v1/trials/{again['id']}/heartbeat").json()
    assert answer["should_stop"] is True and "superseded" in answer["reason"]
    complete(client, again["id"], {"loss": 0.4}, status="stopped")
    view = group(client, g["id"])
    assert view["counts"]["succeeded"] == 1 and view["counts"]["stopped"] == 1


def test_late_report_revives_a_trial_not_yet_reoffered(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID, lease_seconds=1)
    first, slow = suggest(client, g["id"], count=2)["trials"]
    time.sleep(1.3)
    # One call expires both leases and takes back the first configuration only.
    (again,) = suggest(client, g["id"], count=1)["trials"]
    assert again["replaces_id"] == first["id"]
    pending = client.get(f"/api/v1/groups/{g['id']}/trials", params={"status": "pending"}).json()
    assert [t["replaces_id"] for t in pending["items"]] == [slow["id"]]
    # The slow worker was alive after all: its report revives it, the re-offer is withdrawn.
    answer = client.post(f"/api/v1/trials/{slow['id']}/metrics", json={"values": {"acc": 0.3}})
    assert answer.json()["should_stop"] is False
    assert client.get(f"/api/v1/trials/{slow['id']}").json()["status"] == "running"
    pending = client.get(f"/api/v1/groups/{g['id']}/trials", params={"status": "pending"}).json()
    assert pending["items"] == []


def test_metrics_are_a_time_series_and_repeats_are_harmless(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID, objective={"name": "loss", "optimization": "minimize"})
    (trial,) = suggest(client, g["id"])["trials"]
    url = f"/api/v1/trials/{trial['id']}/metrics"
    assert (
        client.post(url, json={"values": {"loss": 0.9}, "step": 1}).json()["should_stop"] is False
    )
    assert client.post(url, json={"values": {"loss": 0.9}, "step": 1}).status_code == 200
    clash = client.post(url, json={"values": {"loss": 0.8}, "step": 1})
    assert clash.status_code == 409 and clash.headers["content-type"] == "application/problem+json"
    assert client.post(url, json={"values": {"loss": 0.7}}).status_code == 200  # step 2
    done = complete(client, trial["id"])  # no final values: the last reported loss counts
    assert done["objective"] == 0.7


def test_complete_twice(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    complete(client, trial["id"], {"acc": 0.5})
    assert complete(client, trial["id"], {"acc": 0.5})["status"] == "succeeded"
    other = client.post(f"/api/v1/trials/{trial['id']}/complete", json={"status": "failed"})
    assert other.status_code == 409


def test_stop_group(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    stopped = client.post(f"/api/v1/groups/{g['id']}/stop").json()
    assert stopped["status"] == "stopped" and stopped["status_reason"] == "stopped by user"
    answer = client.post(f"/api/v1/trials/{trial['id']}/metrics", json={"values": {"acc": 0.1}})
    assert answer.json() == {
        "should_stop": True,
        "reason": "group is stopped",
        "lease_expires_at": answer.json()["lease_expires_at"],
    }
    assert suggest(client, g["id"]) == {
        "trials": [],
        "group_status": "stopped",
        "retry_after": None,
    }


def test_threshold_early_stopping_stops_the_group(client: TestClient) -> None:
    spec = SMALL_GRID | {
        "early_stopping": [{"metric": "acc", "value": 0.9, "optimization": "maximize"}]
    }
    g = create_group(client, spec)
    first, second = suggest(client, g["id"], count=2)["trials"]
    client.post(f"/api/v1/trials/{first['id']}/metrics", json={"values": {"acc": 0.95}})
    view = group(client, g["id"])
    assert view["status"] == "stopped" and "acc = 0.95 >= 0.9" in view["status_reason"]
    answer = client.post(f"/api/v1/trials/{second['id']}/heartbeat").json()
    assert answer["should_stop"] is True


def test_idempotent_retries_give_one_result(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID | {"concurrency": 4})
    url = f"/api/v1/groups/{g['id']}/suggestions"
    headers = {"Idempotency-Key": "suggest-1"}
    one = client.post(url, json={"count": 2}, headers=headers).json()
    two = client.post(url, json={"count": 2}, headers=headers).json()
    assert one == two and len(one["trials"]) == 2
    assert group(client, g["id"])["counts"]["running"] == 2
    reused = client.post(url, json={"count": 1}, headers=headers)
    assert reused.status_code == 409
    complete_url = f"/api/v1/trials/{one['trials'][0]['id']}/complete"
    body = {"status": "succeeded", "values": {"acc": 1.0}}
    first = client.post(complete_url, json=body, headers={"Idempotency-Key": "c1"})
    again = client.post(complete_url, json=body, headers={"Idempotency-Key": "c1"})
    assert first.json() == again.json()


def test_list_and_filter(client: TestClient) -> None:
    ids = [create_group(client, SMALL_GRID)["id"] for _ in range(3)]
    page = client.get("/api/v1/groups", params={"limit": 2}).json()
    assert [g["id"] for g in page["items"]] == sorted(ids, reverse=True)[:2]
    rest = client.get("/api/v1/groups", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == sorted(ids)[0]
    suggest(client, ids[0])
    running = client.get("/api/v1/groups", params={"status": "running", "limit": 1000}).json()
    assert ids[0] in {g["id"] for g in running["items"]}
    assert ids[1] not in {g["id"] for g in running["items"]}


def test_export_csv_and_json(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    complete(client, trial["id"], {"acc": 0.5})
    csv_text = client.get(f"/api/v1/groups/{g['id']}/export").text
    header, row = csv_text.splitlines()[:2]
    assert "param.lr" in header and "value.acc" in header
    assert "0.5" in row
    rows = client.get(f"/api/v1/groups/{g['id']}/export", params={"format": "json"}).json()
    assert rows[0]["params"] == trial["params"]


def test_delete_group(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    (trial,) = suggest(client, g["id"])["trials"]
    assert client.delete(f"/api/v1/groups/{g['id']}").status_code == 204
    assert client.get(f"/api/v1/groups/{g['id']}").status_code == 404
    assert client.get(f"/api/v1/trials/{trial['id']}").status_code == 404


def test_housekeeping_expires_lost_leases_without_any_suggest_call(database_url: str) -> None:
    with make_client(database_url, housekeeping_seconds=0.3) as c:
        g = create_group(c, SMALL_GRID, lease_seconds=1)
        (lost,) = suggest(c, g["id"])["trials"]
        time.sleep(2.0)
        assert c.get(f"/api/v1/trials/{lost['id']}").json()["status"] == "expired"
        pending = c.get(f"/api/v1/groups/{g['id']}/trials", params={"status": "pending"}).json()
        assert [t["params"] for t in pending["items"]] == [lost["params"]]


def test_delete_is_idempotent_with_a_key(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID)
    headers = {"Idempotency-Key": f"delete-{g['id']}"}
    assert client.delete(f"/api/v1/groups/{g['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/groups/{g['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/groups/{g['id']}").status_code == 404


def test_a_keyed_long_poll_gets_the_trial_that_frees_up(client: TestClient) -> None:
    """A long poll with an Idempotency-Key must not replay its first, empty look."""
    g = create_group(client, SMALL_GRID | {"concurrency": 1})
    (first,) = suggest(client, g["id"])["trials"]
    url = f"/api/v1/groups/{g['id']}/suggestions"
    headers = {"Idempotency-Key": "poll-1"}
    empty = client.post(url, json={"count": 1, "wait_seconds": 0.3}, headers=headers).json()
    assert empty["trials"] == []
    complete(client, first["id"])
    again = client.post(url, json={"count": 1, "wait_seconds": 0.3}, headers=headers).json()
    assert len(again["trials"]) == 1
    replay = client.post(url, json={"count": 1, "wait_seconds": 0.3}, headers=headers).json()
    assert replay == again


def test_metric_curves_and_list_progress(client: TestClient) -> None:
    g = create_group(client, SMALL_GRID, objective={"name": "loss", "optimization": "minimize"})
    first, second = suggest(client, g["id"], count=2)["trials"]
    for step, loss in enumerate([0.9, 0.5, 0.4]):
        client.post(
            f"/api/v1/trials/{first['id']}/metrics",
            json={"values": {"loss": loss, "acc": 1 - loss}, "step": step},
        )
    client.post(f"/api/v1/trials/{second['id']}/metrics", json={"values": {"loss": 0.8}, "step": 0})
    complete(client, first["id"])
    curves = client.get(f"/api/v1/trials/{first['id']}/metrics").json()["items"]
    assert {c["name"]: c["values"] for c in curves} == {
        "acc": [1 - 0.9, 1 - 0.5, 1 - 0.4],
        "loss": [0.9, 0.5, 0.4],
    }
    group_curves = client.get(f"/api/v1/groups/{g['id']}/metrics", params={"name": "loss"}).json()
    assert {c["trial_id"]: c["steps"] for c in group_curves["items"]} == {
        first["id"]: [0, 1, 2],
        second["id"]: [0],
    }
    page = client.get("/api/v1/groups", params={"limit": 1000}).json()["items"]
    (mine,) = [item for item in page if item["id"] == g["id"]]
    assert mine["finished_trials"] == 1 and mine["best_value"] == 0.4

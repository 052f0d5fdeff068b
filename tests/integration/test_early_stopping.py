"""Early stopping over HTTP: per-trial policies, and the failure share of a group."""

from typing import Any

from fastapi.testclient import TestClient

from tests.integration.helpers import complete, create_group, group, suggest


def policy_group(client: TestClient, policy: dict[str, Any], optimization: str) -> list[dict]:
    spec = {
        "concurrency": 10,
        "random_search": {"n_experiments": 10},
        "matrix": {"x": {"uniform": [0, 1]}},
        "early_stopping": [
            {"metric": "m", "value": 0, "optimization": optimization, "policy": policy}
        ],
    }
    g = create_group(client, spec, objective={"name": "m", "optimization": optimization})
    return suggest(client, g["id"], count=5)["trials"]


def report(client: TestClient, trial: dict, value: float, step: int) -> dict:
    response = client.post(
        f"/api/v1/trials/{trial['id']}/metrics", json={"values": {"m": value}, "step": step}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_median_rule_stops_a_trial_worse_than_the_median(client: TestClient) -> None:
    a, b, c, d, _ = policy_group(
        client, {"kind": "median", "evaluation_interval": 1, "min_samples": 2}, "minimize"
    )
    assert report(client, a, 0.5, 1)["should_stop"] is False  # nobody to compare with
    assert report(client, b, 0.6, 1)["should_stop"] is False  # one sample is too few
    verdict = report(client, c, 0.7, 1)
    assert verdict["should_stop"] is True and "median" in verdict["reason"]
    assert report(client, d, 0.52, 1)["should_stop"] is False  # better than 0.55
    stopped = client.get(f"/api/v1/trials/{c['id']}").json()
    assert stopped["status"] == "stopped" and stopped["stop_reason"] == verdict["reason"]
    # The client, unaware, reports its end: kept, and the verdict stays.
    assert complete(client, c["id"], {"m": 0.69})["status"] == "stopped"


def test_median_rule_respects_its_interval(client: TestClient) -> None:
    a, b, c, _, _ = policy_group(
        client, {"kind": "median", "evaluation_interval": 2, "min_interval": 4}, "minimize"
    )
    for trial, value in ((a, 0.1), (b, 0.2)):
        for step in (1, 2, 3, 4):
            report(client, trial, value, step)
    assert report(client, c, 0.9, 2)["should_stop"] is False  # before min_interval
    assert report(client, c, 0.9, 3)["should_stop"] is False  # not on the interval
    assert report(client, c, 0.9, 4)["should_stop"] is True


def test_average_rule(client: TestClient) -> None:
    a, b, c, _, _ = policy_group(client, {"kind": "average", "evaluation_interval": 1}, "maximize")
    report(client, a, 0.9, 1)
    report(client, b, 0.1, 1)
    assert report(client, c, 0.6, 1)["should_stop"] is False  # mean is 0.5
    verdict = report(client, c, 0.3, 2)
    assert verdict["should_stop"] is False  # best so far is still 0.6; nobody else at step 2


def test_truncation_rule_stops_the_worst_share(client: TestClient) -> None:
    a, b, c, d, _ = policy_group(
        client,
        {"kind": "truncation", "percent": 50, "evaluation_interval": 1, "min_samples": 3},
        "minimize",
    )
    assert report(client, a, 0.1, 1)["should_stop"] is False
    assert report(client, b, 0.2, 1)["should_stop"] is False
    assert report(client, c, 0.15, 1)["should_stop"] is False  # two others: too few
    verdict = report(client, d, 0.4, 1)  # worst half of 0.1, 0.15, 0.2, 0.4
    assert verdict["should_stop"] is True and "truncation" in verdict["reason"]


def test_diff_rule_stops_what_trails_the_best_by_too_much(client: TestClient) -> None:
    a, b, c, _, _ = policy_group(
        client, {"kind": "diff", "percent": 10, "evaluation_interval": 1}, "maximize"
    )
    report(client, a, 1.0, 1)
    assert report(client, b, 0.95, 1)["should_stop"] is False
    verdict = report(client, c, 0.85, 1)
    assert verdict["should_stop"] is True and "diff" in verdict["reason"]


def test_stopped_trial_frees_its_slot(client: TestClient) -> None:
    spec = {
        "concurrency": 3,
        "random_search": {"n_experiments": 10},
        "matrix": {"x": {"uniform": [0, 1]}},
        "early_stopping": [
            {
                "metric": "m",
                "value": 0,
                "optimization": "minimize",
                "policy": {"kind": "diff", "percent": 10, "evaluation_interval": 1},
            }
        ],
    }
    g = create_group(client, spec)
    a, b, c = suggest(client, g["id"], count=3)["trials"]
    assert suggest(client, g["id"])["trials"] == []
    report(client, a, 1.0, 1)
    assert report(client, b, 5.0, 1)["should_stop"] is True
    assert len(suggest(client, g["id"])["trials"]) == 1


def test_failure_early_stopping_fails_the_group(client: TestClient) -> None:
    spec = {
        "concurrency": 4,
        "random_search": {"n_experiments": 4},
        "matrix": {"x": {"uniform": [0, 1]}},
        "failure_early_stopping": {"percent": 50},
    }
    g = create_group(client, spec)
    a, b, c, d = suggest(client, g["id"], count=4)["trials"]
    complete(client, a["id"], status="failed")
    assert group(client, g["id"])["status"] == "running"
    complete(client, b["id"], status="failed")
    failed = group(client, g["id"])
    assert failed["status"] == "failed" and "2 failed" in failed["status_reason"]
    answer = client.post(f"/api/v1/trials/{c['id']}/heartbeat").json()
    assert answer["should_stop"] is True and answer["reason"] == "group is failed"

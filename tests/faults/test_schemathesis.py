"""Schemathesis against `hpo serve`: every operation of the committed contract.

Cases come from `openapi/openapi.json` (the committed file, not the live app,
so the contract clients build on is what gets tested) and go to two server
processes on a fresh PostgreSQL database. Every response must be a non-5xx
whose status code, media type, headers and body the contract declares, and
every error must be an RFC 9457 problem.

Generation is seeded and bounded: the same cases run every time, at most
`MAX_EXAMPLES` generated ones per operation (plus schemathesis' examples and
boundary-coverage cases). Path ids are partly swapped for ids of groups and
trials made beforehand, so that the success answers of every operation are
checked too, not only their 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
SEED = 20_240_611
MAX_EXAMPLES = 25
# A long poll waits up to HPO_MAX_WAIT_SECONDS (60 s) for a trial; that tests the
# clock, not the contract, so generated waits are cut to this.
MAX_WAIT_SECONDS = 0.2
PROBLEM = "application/problem+json"

schema = schemathesis.openapi.from_path(OPENAPI)
schema.config.seed = SEED


def problem_details(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """An error body is an RFC 9457 problem; a 422 names each faulty field by its path."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM}"
    )
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"the problem is not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict), f"the problem is not an object: {body!r}"
    for key, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(body.get(key), kind), f"problem member {key!r} is not a {kind.__name__}"
    assert body["status"] == response.status_code, "the problem's status differs from the HTTP one"
    if response.status_code == 422:
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, "a 422 problem without `errors`"
        for error in errors:
            assert isinstance(error, dict) and isinstance(error.get("path"), str), (
                f"a 422 error without a string `path`: {error!r}"
            )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_details,
]


# --------------------------------------------------------------------------- known ids


@dataclass
class Known:
    """Ids that exist on the server; destructive operations get ids of their own."""

    groups: list[int] = field(default_factory=list)
    trials: list[int] = field(default_factory=list)
    spare_groups: list[int] = field(default_factory=list)
    spare_trials: list[int] = field(default_factory=list)


SPECS: list[dict[str, Any]] = [
    {
        "name": "grid",
        "objective": {"name": "loss", "optimization": "minimize"},
        "hptuning": {
            "concurrency": 50,
            "matrix": {"lr": {"values": [0.1, 0.01, 0.001]}, "batch_size": {"range": "16:80:16"}},
        },
    },
    {
        "name": "random",
        "objective": {"name": "accuracy"},
        "hptuning": {
            "concurrency": 50,
            "seed": 7,
            "random_search": {"n_experiments": 40},
            "matrix": {
                "lr": {"loguniform": "-9:-2"},
                "optimizer": {"pvalues": [["adam", 0.5], ["sgd", 0.5]]},
            },
        },
    },
    {
        "name": "asha",
        "hptuning": {
            "concurrency": 20,
            "hyperband": {
                "max_iter": 9,
                "eta": 3,
                "asynchronous": True,
                "resource": {"name": "epochs", "type": "int"},
                "metric": {"name": "loss", "optimization": "minimize"},
            },
            "matrix": {"dropout": {"uniform": "0:0.5"}},
        },
    },
    {
        "name": "bo",
        "hptuning": {
            "concurrency": 10,
            "bo": {"n_initial_trials": 2, "n_iterations": 3, "metric": {"name": "loss"}},
            "matrix": {"x": {"uniform": "-1:1"}},
        },
    },
]


def _create(client: httpx.Client, spec: dict[str, Any]) -> int:
    response = client.post("/api/v1/groups", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _suggest(client: httpx.Client, group_id: int, count: int) -> list[dict[str, Any]]:
    response = client.post(f"/api/v1/groups/{group_id}/suggestions", json={"count": count})
    assert response.status_code == 200, response.text
    return response.json()["trials"]


@pytest.fixture(scope="module")
def known(pg_server: LiveServer) -> Iterator[Known]:
    """Groups in several states, with running, reporting and finished trials."""
    known = Known()
    with httpx.Client(base_url=pg_server.url, timeout=30) as client:
        for spec in SPECS:
            group_id = _create(client, spec)
            known.groups.append(group_id)
            trials = _suggest(client, group_id, 3)
            known.trials += [trial["id"] for trial in trials]
            metric = "accuracy" if spec["name"] == "random" else "loss"
            first, second = trials[0]["id"], trials[1]["id"]
            for step in (1, 2):
                reported = client.post(
                    f"/api/v1/trials/{first}/metrics",
                    json={"values": {metric: 0.5 / step}, "step": step},
                )
                assert reported.status_code == 200, reported.text
            completed = client.post(
                f"/api/v1/trials/{first}/complete",
                json={"status": "succeeded", "values": {metric: 0.25}},
            )
            assert completed.status_code == 200, completed.text
            failed = client.post(f"/api/v1/trials/{second}/complete", json={"status": "failed"})
            assert failed.status_code == 200, failed.text
        known.spare_trials += [trial["id"] for trial in _suggest(client, known.groups[1], 6)]
        known.spare_groups += [_create(client, SPECS[0]) for _ in range(4)]
        stopped = client.post(f"/api/v1/groups/{known.spare_groups[-1]}/stop")
        assert stopped.status_code == 200, stopped.text
        known.groups.append(known.spare_groups.pop())
    yield known


DESTRUCTIVE = {
    "DELETE /api/v1/groups/{group_id}",
    "POST /api/v1/groups/{group_id}/stop",
    "POST /api/v1/trials/{trial_id}/complete",
}


def _use_known_ids(case: schemathesis.Case, known: Known) -> None:
    """Swap about half of the small generated integer ids for ids that exist.

    The choice depends only on the generated number, so a seeded run sends the
    same requests every time. Large, negative and non-integer ids (boundary and
    negative cases) are sent as generated.
    """
    destructive = case.operation.label in DESTRUCTIVE
    pools = {
        "group_id": known.spare_groups if destructive else known.groups,
        "trial_id": known.spare_trials if destructive else known.trials,
    }
    for name, pool in pools.items():
        value = (case.path_parameters or {}).get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1000 and pool:
            if value % 2 == 0:
                case.path_parameters[name] = pool[(value // 2) % len(pool)]


def _shorten_long_polls(case: schemathesis.Case) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("wait_seconds"), int | float):
        if not isinstance(body["wait_seconds"], bool):
            body["wait_seconds"] = min(body["wait_seconds"], MAX_WAIT_SECONDS)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_operation_conforms(
    case: schemathesis.Case, pg_server: LiveServer, known: Known
) -> None:
    _use_known_ids(case, known)
    _shorten_long_polls(case)
    case.call_and_validate(base_url=pg_server.url, checks=CHECKS, timeout=30)

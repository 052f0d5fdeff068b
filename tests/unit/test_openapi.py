"""openapi/openapi.json is the contract: it must be what the app serves."""

import json
from pathlib import Path

from app.config import Settings
from app.main import create_app

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app() -> None:
    served = create_app(Settings(migrate_on_start=False)).openapi()
    committed = json.loads(SPEC.read_text())
    assert committed == served, (
        "openapi/openapi.json is stale: run `hpo openapi -o openapi/openapi.json`"
    )


def test_operation_ids_are_stable_names() -> None:
    spec = json.loads(SPEC.read_text())
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "create_group",
        "list_groups",
        "get_group",
        "stop_group",
        "delete_group",
        "list_trials",
        "export_group",
        "suggest",
        "get_trial",
        "report_metrics",
        "heartbeat",
        "complete",
    } <= ids

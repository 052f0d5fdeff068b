"""Routes of groups: create, list, look at, stop, delete, export, and their trials."""

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from app.api.auth import principal_of
from app.api.deps import (
    MAX_ID,
    DatabaseDep,
    GroupId,
    IdempotencyKeyHeader,
    SettingsDep,
    idempotency,
)
from app.schemas.api import (
    Deleted,
    GroupPage,
    GroupStatus,
    GroupView,
    MetricSeriesList,
    Problem,
    ProjectName,
    TrialPage,
    TrialRequest,
    TrialStatus,
    TrialView,
)
from app.schemas.documents import parse_group_document
from app.services import groups as service
from app.services import projects, tx
from app.services import trials as trial_service

router = APIRouter(prefix="/api/v1/groups", tags=["groups"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such group"},
    409: {"model": Problem, "description": "Conflicts with the group's state"},
    422: {"model": Problem, "description": "Invalid input, with the path of each faulty field"},
}
Limit = Annotated[int, Query(ge=1, le=1000)]
ProjectQuery = Annotated[
    ProjectName | None,
    Query(description="The project (the admin's choice; a project key works in its own)."),
]
Cursor = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="`next_cursor` of the previous page")
]

_SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GroupRequest"}},
            "application/yaml": {
                "schema": {
                    "type": "string",
                    "description": "A polyaxonfile, a bare `hptuning` section, "
                    "or the JSON form as YAML.",
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=GroupView,
    responses={413: {"model": Problem}, **ERRORS},
    openapi_extra=_SPEC_BODY,
)
async def create_group(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    project: ProjectQuery = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> GroupView:
    """Create a group from an `hptuning` section, a polyaxonfile, or the JSON form."""
    body = await request.body()
    group_request = parse_group_document(body, request.headers.get("content-type"))
    content = body.decode("utf-8", errors="replace")
    idem = idempotency(idempotency_key, request, content)
    principal = principal_of(request)

    def create(conn: Connection) -> GroupView:
        project_id = projects.project_for_new_group(conn, principal, project)
        return service.create_group(
            conn, group_request, content, settings.default_lease_seconds, project_id
        )

    return await run_in_threadpool(tx.run, db, create, model=GroupView, idem=idem)


@router.get(
    "",
    response_model=GroupPage,
    responses={404: {"model": Problem, "description": "No such project"}},
)
def list_groups(
    request: Request,
    db: DatabaseDep,
    status: GroupStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    project: ProjectQuery = None,
) -> GroupPage:
    """List groups, newest first, optionally of one status; a project key sees its own."""
    principal = principal_of(request)

    def page(conn: Connection) -> GroupPage:
        project_id = projects.project_id_for(conn, principal, project)
        return service.list_groups(conn, status, limit, cursor, project_id)

    return tx.run(db, page, model=GroupPage, write=False)


@router.get("/{group_id}", response_model=GroupView, responses=ERRORS)
def get_group(group_id: GroupId, db: DatabaseDep) -> GroupView:
    """A group's status, trial counts and best trial so far."""
    return tx.run(db, service.get_group, group_id, model=GroupView, write=False)


@router.post("/{group_id}/stop", response_model=GroupView, responses=ERRORS)
def stop_group(
    group_id: GroupId,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> GroupView:
    """Stop a group: no new suggestions; running trials are told to stop."""
    idem = idempotency(idempotency_key, request)
    return tx.run(db, service.stop_group, group_id, model=GroupView, idem=idem)


@router.delete("/{group_id}", status_code=204, responses=ERRORS)
def delete_group(
    group_id: GroupId,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Delete a group with its trials and metrics."""
    idem = idempotency(idempotency_key, request)
    tx.run(db, service.delete_group, group_id, model=Deleted, idem=idem)
    return Response(status_code=204)


@router.get("/{group_id}/trials", response_model=TrialPage, responses=ERRORS)
def list_trials(
    group_id: GroupId,
    db: DatabaseDep,
    status: TrialStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> TrialPage:
    """List a group's trials in the order they were created."""
    return tx.run(
        db, service.list_trials, group_id, status, limit, cursor, model=TrialPage, write=False
    )


@router.get("/{group_id}/metrics", response_model=MetricSeriesList, responses=ERRORS)
def group_metrics(
    group_id: GroupId,
    db: DatabaseDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
) -> MetricSeriesList:
    """The metric curves of a group's most recent trials (one metric, or all)."""
    return tx.run(
        db, service.metric_series, group_id, name, limit, model=MetricSeriesList, write=False
    )


@router.post("/{group_id}/trials", status_code=201, response_model=TrialView, responses=ERRORS)
def enqueue_trial(
    group_id: GroupId,
    body: TrialRequest,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TrialView:
    """Enqueue a configuration to try (a baseline, a warm start) before the algorithm's own."""
    idem = idempotency(idempotency_key, request, body.model_dump())
    return tx.run(db, trial_service.enqueue, group_id, body.params, model=TrialView, idem=idem)


@router.get(
    "/{group_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/TrialView"}}
                },
            }
        },
        **ERRORS,
    },
)
def export_group(
    group_id: GroupId, db: DatabaseDep, format: Literal["csv", "json"] = "csv"
) -> StreamingResponse:
    """Every trial of a group, with params and final values, as CSV or JSON."""
    rows = service.export_rows(db, group_id)
    first = next(rows, None)  # raises NotFound before the response starts
    if format == "json":
        return StreamingResponse(_json_lines(first, rows), media_type="application/json")
    # A first pass for the column names: trials may report different final values.
    value_names = sorted(
        {n for row in service.export_rows(db, group_id) for n in row["values"] or {}}
    )
    return StreamingResponse(
        _csv_lines(first, rows, value_names),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="group-{group_id}.csv"'},
    )


def _json_lines(first: dict | None, rest: Iterator[dict]) -> Iterator[str]:
    yield "["
    if first is not None:
        yield json.dumps(first)
        for row in rest:
            yield "," + json.dumps(row)
    yield "]"


_CSV_FIELDS = ["id", "config_index", "attempt", "status", "objective", "worker_id",
               "created_at", "started_at", "finished_at"]  # fmt: skip


def _csv_lines(first: dict | None, rest: Iterator[dict], value_names: list[str]) -> Iterator[str]:
    if first is None:
        yield ",".join(_CSV_FIELDS) + "\n"
        return
    param_names = list(first["params"])  # every trial of a group has the same params
    header = _CSV_FIELDS + [f"param.{n}" for n in param_names] + [f"value.{n}" for n in value_names]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in _chain(first, rest):
        values = row["values"] or {}
        writer.writerow(
            [row[f] for f in _CSV_FIELDS]
            + [_cell(row["params"].get(n)) for n in param_names]
            + [values.get(n) for n in value_names]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value

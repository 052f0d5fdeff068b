"""Routes of projects and API keys (the admin key only), and of the caller's identity."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from app.api.auth import is_open, principal_of
from app.api.deps import DatabaseDep, IdempotencyKeyHeader, idempotency
from app.schemas.api import (
    Identity,
    KeyCreated,
    KeyList,
    KeyRequest,
    KeyView,
    Problem,
    ProjectList,
    ProjectName,
    ProjectRequest,
    ProjectView,
)
from app.services import projects as service
from app.services import tx

router = APIRouter(prefix="/api/v1", tags=["projects"])
# TODO(hpo): no route renames or deletes a project, and keys do not expire nor record
# when they were last used; #7 asked for none of it, and each needs a rule for the
# groups (or requests) that depend on it.

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No key, or an unknown or revoked one"},
    403: {"model": Problem, "description": "Only the admin key manages projects and keys"},
    404: {"model": Problem, "description": "No such project or key"},
    409: {"model": Problem, "description": "The project exists already"},
}
ProjectPath = Annotated[ProjectName, Path(description="A project's name.")]
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$", description="A key's `key_id`.")]


@router.get("/me", response_model=Identity, responses=ERRORS)
def who_am_i(request: Request) -> Identity:
    """The role and project of the key this request was sent with."""
    principal = principal_of(request)
    return Identity(
        role=principal.role,
        project=principal.project_name,
        key_id=principal.key_id,
        open=is_open(request),
    )


@router.post("/projects", status_code=201, response_model=ProjectView, responses=ERRORS)
def create_project(
    body: ProjectRequest,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ProjectView:
    """Create a project: a team's own space of groups, with keys of its own."""
    idem = idempotency(idempotency_key, request, body.model_dump())
    return tx.run(db, service.create_project, body.name, model=ProjectView, idem=idem)


@router.get("/projects", response_model=ProjectList, responses=ERRORS)
def list_projects(db: DatabaseDep) -> ProjectList:
    """Every project, with how many groups it holds."""
    return tx.run(db, service.list_projects, model=ProjectList, write=False)


@router.post(
    "/projects/{project}/keys", status_code=201, response_model=KeyCreated, responses=ERRORS
)
def create_key(
    project: ProjectPath,
    body: KeyRequest,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> KeyCreated:
    """Create a key of a project; its secret is in this answer only."""
    idem = idempotency(idempotency_key, request, body.model_dump())
    return tx.run(
        db, service.create_key, project, body.role, body.name, model=KeyCreated, idem=idem
    )


@router.get("/projects/{project}/keys", response_model=KeyList, responses=ERRORS)
def list_keys(project: ProjectPath, db: DatabaseDep) -> KeyList:
    """A project's keys, revoked ones included, without their secrets."""
    return tx.run(db, service.list_keys, project, model=KeyList, write=False)


@router.delete("/keys/{key_id}", response_model=KeyView, responses=ERRORS)
def revoke_key(key_id: KeyIdPath, db: DatabaseDep) -> KeyView:
    """Revoke a key: every later request with it is refused (401)."""
    return tx.run(db, service.revoke_key, key_id, model=KeyView)

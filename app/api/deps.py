"""Request dependencies, declared once and used by type."""

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request

from app.config import Settings
from app.db.engine import Database
from app.services.tx import IdempotencyKey


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


# Ids are 64-bit in the database: anything outside is refused before it gets there.
MAX_ID = 2**63 - 1
GroupId = Annotated[int, Path(ge=1, le=MAX_ID, description="A group's id.")]
TrialId = Annotated[int, Path(ge=1, le=MAX_ID, description="A trial's id.")]
DatabaseDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="A retry with the same key gets the first answer back.",
    ),
]


def idempotency(key: str | None, request: Request, body: Any = None) -> IdempotencyKey | None:
    """The stored-answer key of a state-changing request, when the client sent one.

    Keys are the client's choice, so two projects may well pick the same one for
    the same route: each project's answers are kept apart.
    """
    if not key:
        return None
    project_id = getattr(request.state, "principal", None) and request.state.principal.project_id
    path = request.url.path if project_id is None else f"{request.url.path} @{project_id}"
    return IdempotencyKey.of(key, request.method, path, body)

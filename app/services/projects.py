"""Projects and API keys: who may see and change which groups.

A key reads `hpo_<key id>_<secret>`. The key id is public: it finds the key's
row and names the key in listings and logs. Of the secret only a SHA-256 is
kept; the secret has 256 random bits, so a fast hash is enough (a slow one
protects guessable passwords, which these are not). Hashes are compared in
constant time.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import structlog
from sqlalchemy import Connection, func, insert, select, update

from app.db.tables import DEFAULT_PROJECT_ID, api_keys, groups, projects, trials, utcnow
from app.errors import Conflict, NotFound
from app.schemas.api import KeyCreated, KeyList, KeyView, ProjectList, ProjectView

log = structlog.get_logger(__name__)

Role = Literal["read", "write", "admin"]
KEY_PREFIX = "hpo_"


@dataclass(frozen=True)
class Principal:
    """Who sends a request: a project's key, or the admin (all projects).

    `project_id` None means every project: the admin key, or a service running
    open on loopback without any key.
    """

    role: Role
    project_id: int | None = None
    project_name: str | None = None
    key_id: str | None = None

    def may(self, write: bool) -> bool:
        return self.role in ("write", "admin") if write else True


ADMIN = Principal(role="admin")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Compared against when a key id is unknown, so that a miss costs what a hit does.
_NO_SUCH_KEY = secret_hash(secrets.token_urlsafe(32))


def split_key(key: str) -> tuple[str, str] | None:
    """The (key id, secret) of a key, or None when it is not shaped like one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32 or len(secret) > 200:
        return None
    return key_id, secret


def authenticate(
    conn: Connection, key: str, *, group_id: int | None = None, trial_id: int | None = None
) -> tuple[Principal | None, int | None]:
    """The principal of a project key, and the project owning the group or trial named.

    One round trip: the key's row and, when the path names a group or a trial,
    the project it belongs to (None when there is no such group or trial).
    """
    parts = split_key(key)
    owner = None
    if group_id is not None:
        owner = select(groups.c.project_id).where(groups.c.id == group_id).scalar_subquery()
    elif trial_id is not None:
        owner = (
            select(groups.c.project_id)
            .select_from(trials.join(groups, groups.c.id == trials.c.group_id))
            .where(trials.c.id == trial_id)
            .scalar_subquery()
        )
    row = None
    if parts is not None:
        columns = [
            api_keys.c.secret_hash,
            api_keys.c.role,
            api_keys.c.project_id,
            api_keys.c.revoked_at,
            projects.c.name,
        ]
        if owner is not None:
            columns.append(owner.label("owner"))
        query = (
            select(*columns)
            .select_from(api_keys.join(projects, projects.c.id == api_keys.c.project_id))
            .where(api_keys.c.key_id == parts[0])
        )
        row = conn.execute(query).mappings().first()
    stored = row["secret_hash"] if row is not None else _NO_SUCH_KEY
    given = secret_hash(parts[1] if parts is not None else key)
    if not hmac.compare_digest(stored, given) or row is None or row["revoked_at"] is not None:
        return None, None
    principal = Principal(
        role=row["role"],
        project_id=row["project_id"],
        project_name=row["name"],
        key_id=parts[0] if parts else None,
    )
    return principal, row.get("owner")


def project_id_for(conn: Connection, principal: Principal, name: str | None) -> int | None:
    """The project a request works in: the key's own, or the one the admin names.

    None (only for the admin) means no project was named.
    """
    if principal.project_id is not None:
        if name is not None and name != principal.project_name:
            raise NotFound(f"project {name!r} does not exist")
        return principal.project_id
    if name is None:
        return None
    return _project(conn, name)["id"]


def project_for_new_group(conn: Connection, principal: Principal, name: str | None) -> int:
    return project_id_for(conn, principal, name) or DEFAULT_PROJECT_ID


def _project(conn: Connection, name: str) -> dict:
    row = conn.execute(select(projects).where(projects.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"project {name!r} does not exist")
    return dict(row)


def _project_view(conn: Connection, row: dict) -> ProjectView:
    count = conn.execute(
        select(func.count()).select_from(groups).where(groups.c.project_id == row["id"])
    ).scalar_one()
    return ProjectView(id=row["id"], name=row["name"], groups=count, created_at=row["created_at"])


def create_project(conn: Connection, name: str) -> ProjectView:
    if conn.execute(select(projects.c.id).where(projects.c.name == name)).first() is not None:
        raise Conflict(f"project {name!r} exists already")
    project_id = conn.execute(
        insert(projects).values(name=name, created_at=utcnow()).returning(projects.c.id)
    ).scalar_one()
    log.info("project.created", project_id=project_id, project=name)
    return _project_view(conn, _project(conn, name))


def list_projects(conn: Connection) -> ProjectList:
    rows = conn.execute(select(projects).order_by(projects.c.id)).mappings().all()
    return ProjectList(items=[_project_view(conn, dict(r)) for r in rows])


def _key_view(row: dict, project: str) -> KeyView:
    return KeyView(
        key_id=row["key_id"],
        project=project,
        role=row["role"],
        name=row["name"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def create_key(conn: Connection, project: str, role: str, name: str | None) -> KeyCreated:
    """A new key; its secret is in this answer only and cannot be read again."""
    project_row = _project(conn, project)
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    now = utcnow()
    conn.execute(
        insert(api_keys).values(
            key_id=key_id,
            secret_hash=secret_hash(secret),
            project_id=project_row["id"],
            role=role,
            name=name,
            created_at=now,
        )
    )
    log.info("key.created", key_id=key_id, project=project, role=role)
    view = KeyView(key_id=key_id, project=project, role=role, name=name, created_at=now)
    return KeyCreated(**view.model_dump(), key=f"{KEY_PREFIX}{key_id}_{secret}")


def list_keys(conn: Connection, project: str) -> KeyList:
    project_row = _project(conn, project)
    rows = (
        conn.execute(
            select(api_keys)
            .where(api_keys.c.project_id == project_row["id"])
            .order_by(api_keys.c.id)
        )
        .mappings()
        .all()
    )
    return KeyList(items=[_key_view(dict(r), project) for r in rows])


def revoke_key(conn: Connection, key_id: str) -> KeyView:
    """Revoke a key: from the next request on it is refused. Revoking twice is harmless."""
    row = (
        conn.execute(
            select(api_keys, projects.c.name.label("project"))
            .select_from(api_keys.join(projects, projects.c.id == api_keys.c.project_id))
            .where(api_keys.c.key_id == key_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"key {key_id!r} does not exist")
    row = dict(row)
    if row["revoked_at"] is None:
        row["revoked_at"] = utcnow()
        conn.execute(
            update(api_keys).where(api_keys.c.id == row["id"]).values(revoked_at=row["revoked_at"])
        )
        log.info("key.revoked", key_id=key_id, project=row["project"])
    return _key_view(row, row["project"])

"""Who may do what: API keys checked on every `/api/` request, before any route runs.

With no admin key configured (HPO_ADMIN_KEY unset) the service runs open: every
request acts as the admin. Otherwise each request carries `Authorization:
Bearer <key>`, either the admin key (every project, and the project and key
routes) or a project's key (that project only; `read` keys may only GET).

Checking here, by the path, rather than in each route keeps one rule for every
route, the hot ones included: a group or trial of another project is answered
404 exactly as a missing one is, so a key cannot learn that it exists.
"""

import hashlib
import hmac
import re
from typing import Any

import anyio
import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import MAX_ID
from app.api.problems import problem
from app.services import projects
from app.services.projects import ADMIN, Principal

log = structlog.get_logger(__name__)

_OWNED = re.compile(r"^/api/v1/(groups|trials)/(\d{1,19})(?:/|$)")
_ADMIN_ONLY = ("/api/v1/projects", "/api/v1/keys")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def principal_of(request: Any) -> Principal:
    """The principal the middleware found (the admin when the service runs open)."""
    return getattr(request.state, "principal", ADMIN)


def is_open(request: Any) -> bool:
    return getattr(request.state, "open", False)


class Authenticate:
    def __init__(self, app: ASGIApp, admin_key: str | None) -> None:
        self.app = app
        self.admin_digest = _digest(admin_key) if admin_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self.admin_digest is None:
            state["principal"], state["open"] = ADMIN, True
            await self.app(scope, receive, send)
            return

        def deny(status: int, title: str, detail: str, code: str, **headers: str) -> Any:
            return problem(status, title, detail, code=code, headers=headers or None)

        key = _bearer(scope)
        if key is None:
            response = deny(
                401,
                "Unauthorized",
                "send an API key as `Authorization: Bearer <key>`",
                "unauthorized",
                **{"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        if hmac.compare_digest(_digest(key), self.admin_digest):
            state["principal"] = ADMIN
            await self.app(scope, receive, send)
            return

        kind, owned_id = None, None
        match = _OWNED.match(scope["path"])
        if match and int(match.group(2)) <= MAX_ID:
            kind, owned_id = match.group(1), int(match.group(2))
        db = scope["app"].state.db

        def look_up() -> tuple[Principal | None, int | None]:
            with db.read() as conn:
                return projects.authenticate(
                    conn,
                    key,
                    group_id=owned_id if kind == "groups" else None,
                    trial_id=owned_id if kind == "trials" else None,
                )

        try:
            principal, owner = await anyio.to_thread.run_sync(look_up)
        except (OperationalError, PoolTimeout):
            log.warning("database.unavailable", during="authentication")
            response = deny(
                503,
                "Service unavailable",
                "the database cannot be reached just now; try again",
                "unavailable",
                **{"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return

        if principal is None:
            response = deny(
                401,
                "Unauthorized",
                "the API key is unknown or revoked",
                "unauthorized",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        elif scope["path"].startswith(_ADMIN_ONLY):
            response = deny(403, "Forbidden", "only the admin key manages projects and keys",
                            "forbidden")  # fmt: skip
        elif owner is not None and owner != principal.project_id:
            # Exactly what the route says of a group or trial that does not exist.
            what = "group" if kind == "groups" else "trial"
            response = deny(404, "Not found", f"{what} {owned_id} does not exist", "not_found")
        elif not principal.may(write=scope["method"] not in _READ_METHODS):
            response = deny(403, "Forbidden", "this key may only read", "forbidden")
        else:
            state["principal"] = principal
            structlog.contextvars.bind_contextvars(
                project_id=principal.project_id, key_id=principal.key_id
            )
            await self.app(scope, receive, send)
            return
        log.info(
            "auth.refused",
            status=response.status_code,
            key_id=principal.key_id if principal else None,
            path=scope["path"],
        )
        await response(scope, receive, send)

"""Every error as an RFC 9457 problem: `application/problem+json`, never a traceback."""

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from app.errors import ServiceError
from app.schemas.documents import SpecError, UnsupportedMediaTypeError

log = structlog.get_logger(__name__)

PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"type": f"urn:hpo:problem:{code}", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    # A body field is named by its path inside the body ("count"); others keep
    # their place ("query.limit", "path.group_id", "header.idempotency-key").
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    return ".".join(str(p) for p in parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status_code == 503 else None
        return problem(
            exc.status_code,
            exc.title,
            exc.detail,
            code=exc.code,
            errors=exc.errors,
            headers=headers,
        )

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        if isinstance(exc, UnsupportedMediaTypeError):
            return problem(415, "Unsupported media type", str(exc), code="unsupported_media_type")
        return problem(
            422,
            "Invalid search spec",
            "; ".join(f"{e['path'] or '(document)'}: {e['message']}" for e in exc.errors),
            code="invalid_spec",
            errors=exc.errors,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body_at_fault = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())
        if body_at_fault and media_type and "json" not in media_type:
            return problem(
                415,
                "Unsupported media type",
                f"this route reads JSON; the body was sent as {media_type!r} "
                "(with curl, use --json or -H 'Content-Type: application/json')",
                code="unsupported_media_type",
            )
        errors = [
            {
                "path": _field_path(tuple(e.get("loc", ()))),
                "message": str(e.get("msg", "")).removeprefix("Value error, "),
                "type": e.get("type", "invalid"),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        return problem(422, "Invalid request", detail, code="invalid_request", errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it could not decode: an invalid request like any other.
            return problem(
                422,
                "Invalid request",
                f"the body could not be read: {exc.detail}",
                code="invalid_request",
                errors=[{"path": "", "message": str(exc.detail), "type": "invalid_body"}],
            )
        return problem(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            code=f"http_{exc.status_code}",
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database.unavailable", error=str(exc.orig).splitlines()[0] if exc.orig else "")
        return problem(
            503,
            "Service unavailable",
            "the database cannot be reached just now; try again",
            code="unavailable",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection of this process's pool stayed busy past the pool's timeout:
        # the service is overloaded, not broken; the client should back off and retry.
        log.warning("database.pool_exhausted")
        return problem(
            503,
            "Service unavailable",
            "the service is busy; try again",
            code="unavailable",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        log.exception("database.error")
        return problem(500, "Internal error", "a database error occurred", code="internal_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed")
        return problem(500, "Internal error", "an unexpected error occurred", code="internal_error")


def document(schema: dict[str, Any]) -> None:
    """Say in the OpenAPI document what the handlers above really send.

    Every 4xx and 5xx is a Problem in `application/problem+json` (FastAPI would
    write `application/json`, and its own validation-error shape for 422s), and
    every route that reads a body may answer 413 (too large) and 415 (not JSON,
    or for group creation neither JSON nor YAML). Every `/api/` route takes an
    API key (optional: an open service needs none) and may answer 401 and 403.
    """
    problem_content = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`hpo_...`) or the admin key; not needed when the "
        "service runs open (no HPO_ADMIN_KEY, local use).",
    }
    for route, path in schema.get("paths", {}).items():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            if route.startswith("/api/"):
                operation["security"] = [{"apiKey": []}, {}]
                responses.setdefault("401", {"description": "No key, or an unknown or revoked one"})
                responses.setdefault("403", {"description": "The key's role does not allow this"})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": "The body is too large"})
                responses.setdefault(
                    "415", {"description": "The body's media type is not read here"}
                )
            if operation.get("parameters") or "requestBody" in operation:
                responses.setdefault(
                    "422", {"description": "Invalid input, with the path of each faulty field"}
                )
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = problem_content
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)

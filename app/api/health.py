"""Liveness and readiness."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app import observability
from app.api.deps import DatabaseDep
from app.db.migrate import head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
def readyz(db: DatabaseDep) -> JSONResponse:
    """The database answers and its schema is at the newest migration."""
    try:
        with db.read() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any failure here means "not ready", whatever its kind
        return JSONResponse(
            {"status": "unavailable", "detail": type(exc).__name__}, status_code=503
        )
    head = head_revision()
    if current != head:
        return JSONResponse(
            {"status": "migrating", "schema": current, "head": head}, status_code=503
        )
    return JSONResponse({"status": "ok", "schema": current})


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(db: DatabaseDep) -> Response:
    """Prometheus metrics: requests, latencies, suggestions, leases, trials by status."""
    body, media_type = observability.render(db)
    return Response(body, media_type=media_type)

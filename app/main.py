"""The application factory: routers, middleware, error mapping, lifespan."""

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import anyio
import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import groups, health, problems, projects, trials
from app.api.auth import Authenticate
from app.api.middleware import BodySizeLimit
from app.config import Settings, get_settings
from app.dashboard.routes import router as dashboard_router
from app.db import migrate
from app.db.engine import Database
from app.logging import configure_logging
from app.observability import RequestMetrics
from app.schemas.documents import GroupRequest
from app.services import housekeeping

log = structlog.get_logger(__name__)


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated SDKs: the route function's name, unique across the app.
    return route.name


async def _housekeeping(db: Database, settings: Settings) -> None:
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    while True:
        await asyncio.sleep(settings.housekeeping_seconds)
        try:
            await anyio.to_thread.run_sync(lambda: housekeeping.sweep(db, idempotency_ttl=ttl))
        except Exception:  # a failed sweep must not end the loop; the next one retries
            log.exception("housekeeping.failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Model-based search loads scikit-learn: pay for it at start, not on a request.
        for module in ("app.algorithms.bayes", "app.algorithms.tpe"):
            importlib.import_module(module)

        if settings.migrate_on_start:
            migrate.upgrade(settings.database_url)
        app.state.db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        log.info("service.started", database=app.state.db.engine.url.render_as_string())
        if settings.admin_key is None:
            log.warning(
                "auth.open",
                detail="no HPO_ADMIN_KEY: every request is served without a key; "
                "use this only on a machine of your own",
            )
        chores = asyncio.create_task(_housekeeping(app.state.db, settings))
        try:
            yield
        finally:
            chores.cancel()
            with suppress(asyncio.CancelledError):
                await chores
            app.state.db.dispose()

    app = FastAPI(
        title="hpo-engine",
        version="0.1.0",
        summary="Hyperparameter search as a service: groups, suggestions, leases, metrics.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(health.router)
    app.include_router(groups.router)
    app.include_router(trials.router)
    app.include_router(projects.router)

    app.include_router(dashboard_router)

    def openapi() -> dict:
        # The create route reads its body itself (JSON or YAML), so FastAPI does
        # not see its model: add the JSON form's schema for the SDK generators.
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            body = GroupRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["GroupRequest"] = body
            problems.document(schema)
        return app.openapi_schema or schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(Authenticate, admin_key=settings.admin_key_value)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    return app

"""Prometheus metrics: HTTP traffic, suggestions, leases, and the state of the database.

With several server processes (`hpo serve --workers N`), each one writes its
samples to PROMETHEUS_MULTIPROC_DIR (set by `hpo serve`) and a scrape of any
of them adds them all up.
"""

import os
import time
import uuid

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.engine import Database
from app.db.tables import suggestion_queue, trials

REQUESTS = Counter(
    "hpo_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "hpo_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SUGGESTIONS = Counter(
    "hpo_suggestions_served_total", "Trials handed out, by algorithm.", ["algorithm"]
)
LEASE_EXPIRIES = Counter("hpo_lease_expiries_total", "Trials whose lease ran out.")


class RequestMetrics:
    """Counts and times every request under its route's template, not its raw path.

    It also binds a request id (the client's `X-Request-ID`, or a new one) to
    the request's log lines and sends it back: one wrapper, not two, on every
    request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:100]
                break
        request_id = request_id or uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)


class _DatabaseCollector:
    """Gauges read from the database at scrape time, so every replica reports the same."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self):  # noqa: ANN201 - the prometheus_client collector protocol
        by_status = GaugeMetricFamily("hpo_trials", "Trials by status.", labels=["status"])
        queue = GaugeMetricFamily(
            "hpo_suggestion_queue_depth", "Precomputed suggestions waiting, all groups."
        )
        with self.db.read() as conn:
            for status, n in conn.execute(
                select(trials.c.status, func.count()).group_by(trials.c.status)
            ):
                by_status.add_metric([status], n)
            queue.add_metric(
                [], conn.execute(select(func.count()).select_from(suggestion_queue)).scalar_one()
            )
        yield by_status
        yield queue


def render(db: Database) -> tuple[bytes, str]:
    """The text exposition of every metric of this service."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    own = CollectorRegistry()
    own.register(_DatabaseCollector(db))
    return generate_latest(registry) + generate_latest(own), CONTENT_TYPE_LATEST

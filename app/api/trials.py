"""Routes of the trial lifecycle: suggestions, metrics, heartbeats, completion."""

import time
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from app.api.deps import DatabaseDep, GroupId, IdempotencyKeyHeader, TrialId, idempotency
from app.errors import InvalidRequest
from app.schemas.api import (
    CompleteRequest,
    Heartbeat,
    MetricSeriesList,
    MetricsReport,
    Problem,
    StopAnswer,
    SuggestionRequest,
    SuggestionResponse,
    TrialView,
)
from app.services import groups as group_service
from app.services import trials as service
from app.services import tx

router = APIRouter(prefix="/api/v1", tags=["trials"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such group or trial"},
    409: {"model": Problem, "description": "Conflicts with the trial's state"},
    422: {"model": Problem, "description": "Invalid input, with the path of each faulty field"},
}
# How often a long poll looks again while it waits for a free trial.
_POLL_SECONDS = 0.25


def _json(model: BaseModel) -> Response:
    # The hot routes' answers are built by the service from validated data:
    # send them as they are rather than have FastAPI validate them again.
    return Response(model.model_dump_json(), media_type="application/json")


def _worth_keeping(answer: SuggestionResponse) -> bool:
    # An empty answer changed nothing a retry could repeat: store only trials handed out,
    # so that a keyed long poll keeps looking and a retry after it gets trials.
    return bool(answer.trials)


@router.post("/groups/{group_id}/suggestions", response_model=SuggestionResponse, responses=ERRORS)
async def suggest(
    group_id: GroupId,
    body: SuggestionRequest,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SuggestionResponse:
    """Hand out up to `count` trials to train; an empty list says when to ask again."""
    # The app's state, read directly: on the hottest route each FastAPI dependency costs.
    db, settings = request.app.state.db, request.app.state.settings
    count = body.count
    if count > settings.max_suggestions_per_request:
        limit = settings.max_suggestions_per_request
        raise InvalidRequest(
            f"count is over this service's limit of {limit} suggestions per request",
            errors=[{"path": "count", "message": f"at most {limit}", "type": "less_than_equal"}],
        )
    idem = idempotency(idempotency_key, request, body.model_dump())
    deadline = time.monotonic() + min(body.wait_seconds, settings.max_wait_seconds)
    while True:
        answer = await anyio.to_thread.run_sync(
            lambda: tx.run(
                db,
                service.suggest,
                group_id,
                count,
                body.worker_id,
                model=SuggestionResponse,
                idem=idem,
                keep=_worth_keeping,
            )
        )
        left = deadline - time.monotonic()
        if answer.trials or answer.retry_after is None or left <= 0:
            return _json(answer)  # type: ignore[return-value]
        await anyio.sleep(min(_POLL_SECONDS, left))


@router.get("/trials/{trial_id}", response_model=TrialView, responses=ERRORS)
def get_trial(trial_id: TrialId, db: DatabaseDep) -> TrialView:
    """One trial: params, status, lease, final values."""
    return tx.run(db, service.get_trial, trial_id, model=TrialView, write=False)


@router.get("/trials/{trial_id}/metrics", response_model=MetricSeriesList, responses=ERRORS)
def trial_metrics(trial_id: TrialId, db: DatabaseDep) -> MetricSeriesList:
    """Every metric a trial reported, as curves over its steps."""
    return tx.run(
        db, group_service.trial_metric_series, trial_id, model=MetricSeriesList, write=False
    )


@router.post("/trials/{trial_id}/metrics", response_model=StopAnswer, responses=ERRORS)
def report_metrics(
    trial_id: TrialId,
    body: MetricsReport,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> StopAnswer:
    """Report metric values at a step; the answer says whether to stop training."""
    return tx.run(
        db,
        service.report_metrics,
        trial_id,
        body.values,
        body.step,
        model=StopAnswer,
        idem=idempotency(idempotency_key, request, body.model_dump()),
    )


@router.post("/trials/{trial_id}/heartbeat", response_model=StopAnswer, responses=ERRORS)
def heartbeat(
    trial_id: TrialId,
    db: DatabaseDep,
    body: Heartbeat | None = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> StopAnswer:
    """Extend a running trial's lease; the answer says whether to stop training.

    A heartbeat is harmless to repeat, so an `Idempotency-Key` is accepted and not stored.
    """
    return tx.run(db, service.heartbeat, trial_id, model=StopAnswer)


@router.post("/trials/{trial_id}/complete", response_model=TrialView, responses=ERRORS)
def complete(
    trial_id: TrialId,
    body: CompleteRequest,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TrialView:
    """End a trial as succeeded, failed or stopped, with its final metric values."""
    return _json(  # type: ignore[return-value]
        tx.run(
            request.app.state.db,
            service.complete,
            trial_id,
            body.status,
            body.values,
            model=TrialView,
            idem=idempotency(idempotency_key, request, body.model_dump()),
        )
    )

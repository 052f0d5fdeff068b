"""Use cases of a group as a whole: create, look at, list, stop, delete, export."""

import copy
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, delete, func, insert, select, update

from app.algorithms import DEFAULT_UTILITY, SUPPORTED, build_searcher
from app.algorithms.mapping import MappingSearch
from app.algorithms.random import RandomSearch
from app.algorithms.space import Space, params_hash
from app.db.engine import Database
from app.db.tables import DEFAULT_PROJECT_ID, groups, metrics, trials, utcnow
from app.errors import Conflict, InvalidRequest, NotFound
from app.schemas.api import (
    Deleted,
    GroupPage,
    GroupView,
    MetricSeries,
    MetricSeriesList,
    TrialPage,
)
from app.schemas.documents import GroupRequest, Objective
from app.services.views import TRIAL_COLUMNS, group_summary, group_view, load_group, trial_view

log = structlog.get_logger(__name__)

FINISHED = ("done", "stopped", "failed")


def create_group(
    conn: Connection,
    request: GroupRequest,
    content: str | None,
    default_lease: int,
    project_id: int = DEFAULT_PROJECT_ID,
) -> GroupView:
    spec = request.hptuning
    algorithm = spec.algorithm
    if algorithm not in SUPPORTED:
        raise InvalidRequest(
            f"the `{algorithm}` algorithm is not available yet; available: {', '.join(SUPPORTED)}",
            errors=[
                {
                    "path": f"hptuning.{_SECTION[algorithm]}",
                    "message": f"`{algorithm}` is not available yet in this version of hpo-engine",
                    "type": "not_implemented",
                }
            ],
        )
    if algorithm == "random" and (
        spec.random_search is None or spec.random_search.n_experiments is None
    ):
        raise InvalidRequest(
            "random search needs `n_experiments`",
            errors=[
                {
                    "path": "hptuning.random_search.n_experiments",
                    "message": "This search algorithm requires `n_experiments`.",
                    "type": "missing",
                }
            ],
        )
    normalized = spec.normalized()
    if algorithm == "bo":  # the defaults are written out so that the group shows what it runs
        utility = normalized["bo"].setdefault("utility_function", copy.deepcopy(DEFAULT_UTILITY))
        # Polyaxon refuses a utility_function without gaussian_process at run time; here it
        # gets the same Matern 5/2 as the default, not the nu 1.5 of a gaussian_process that
        # names no nu. Groups stored before this keep the 1.5 they ran with (build_searcher).
        utility.setdefault("gaussian_process", copy.deepcopy(DEFAULT_UTILITY["gaussian_process"]))
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**31)
    try:
        searcher = build_searcher(algorithm, normalized, seed)
    except ValueError as exc:  # a space the algorithm cannot model (list-valued `size` draws)
        raise InvalidRequest(
            str(exc), errors=[{"path": "hptuning.matrix", "message": str(exc), "type": "invalid"}]
        ) from exc
    warnings = []
    if isinstance(searcher, RandomSearch) and searcher.capped:
        warnings.append(
            f"n_experiments is {searcher.n_experiments} but this all-discrete space has only "
            f"{searcher.planned} configurations: the group runs {searcher.planned}"
        )
    objective = _objective(request)
    now = utcnow()
    group_id = conn.execute(
        insert(groups)
        .values(
            project_id=project_id,
            name=request.name,
            description=request.description,
            algorithm=algorithm,
            status="created",
            spec=normalized,
            content=content,
            seed=seed,
            concurrency=spec.concurrency or 1,
            objective_name=objective.name if objective else None,
            objective_direction=objective.optimization if objective else "maximize",
            lease_seconds=request.lease_seconds or default_lease,
            planned_trials=searcher.planned,
            next_index=0,
            warnings=warnings,
            early_stopping=normalized.get("early_stopping"),
            injected_trials=len(request.trials or []),
            created_at=now,
            updated_at=now,
        )
        .returning(groups.c.id)
    ).scalar_one()
    if request.trials:
        _import_trials(conn, group_id, request, searcher, normalized, now)
    log.info(
        "group.created",
        group_id=group_id,
        project_id=project_id,
        algorithm=algorithm,
        planned_trials=searcher.planned,
        concurrency=spec.concurrency or 1,
        seed=seed,
    )
    return get_group(conn, group_id)


def check_params(
    searcher: Any, spec: dict[str, Any], params: dict[str, Any]
) -> list[tuple[str, str]]:
    """Problems of a configuration a person gives (to enqueue or import) for this group."""
    if isinstance(searcher, MappingSearch):
        return searcher.check(params)
    return Space.from_matrix(spec["matrix"]).check(params)


# TODO(hpo): Hyperband does not use imported results: they have no bracket or rung,
# and a rung's promotions need its own trials (#5).
def _import_trials(
    conn: Connection,
    group_id: int,
    request: GroupRequest,
    searcher: Any,
    spec: dict[str, Any],
    now: datetime,
) -> None:
    """Store past results as finished trials the algorithm takes into account.

    They get negative config indexes, apart from the algorithm's own numbering.
    """
    trials_in = request.trials or []
    errors = [
        {"path": f"trials.{i}.params.{name}", "message": message, "type": "invalid_param"}
        for i, t in enumerate(trials_in)
        for name, message in check_params(searcher, spec, t.params)
    ]
    if errors:
        raise InvalidRequest("imported trials do not fit the search space", errors=errors)
    objective = _objective(request)
    conn.execute(
        insert(trials),
        [
            {
                "group_id": group_id,
                "config_index": -(i + 1),
                "attempt": 0,
                "params": t.params,
                "params_hash": params_hash(t.params),
                "status": t.status,
                "values": t.values,
                "objective": t.values.get(objective.name) if objective else None,
                "source": "import",
                "created_at": now,
                "finished_at": now,
            }
            for i, t in enumerate(trials_in)
        ],
    )


def _objective(request: GroupRequest) -> Objective | None:
    """The metric to optimise: the algorithm's `metric`, else `objective` (grid, random)."""
    spec = request.hptuning
    section = spec.hyperband or spec.bo or spec.tpe
    metric = section.metric if section is not None else None
    if metric is None:
        return request.objective
    from_algorithm = Objective(name=metric.name, optimization=metric.optimization)
    if request.objective is not None and request.objective != from_algorithm:
        raise InvalidRequest(
            "`objective` differs from the algorithm's `metric`",
            errors=[
                {
                    "path": "objective",
                    "message": "leave `objective` out, or make it equal to the algorithm's metric",
                    "type": "conflict",
                }
            ],
        )
    return from_algorithm


_SECTION = {"hyperband": "hyperband", "bo": "bo", "grid": "grid_search", "random": "random_search"}


def get_group(conn: Connection, group_id: int) -> GroupView:
    group = load_group(conn, group_id)
    if group is None:
        raise NotFound(f"group {group_id} does not exist")
    return group_view(conn, group)


def list_groups(
    conn: Connection,
    status: str | None,
    limit: int,
    cursor: int | None,
    project_id: int | None = None,
) -> GroupPage:
    """Newest first; `cursor` is the id the previous page ended on; one project or all."""
    query = select(groups).order_by(groups.c.id.desc()).limit(limit + 1)
    if project_id is not None:
        query = query.where(groups.c.project_id == project_id)
    if status is not None:
        query = query.where(groups.c.status == status)
    if cursor is not None:
        query = query.where(groups.c.id < cursor)
    rows = conn.execute(query).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    stats = _group_stats(conn, [r["id"] for r in rows])
    items = []
    for r in rows:
        finished, low, high = stats.get(r["id"], (0, None, None))
        summary = group_summary(r)
        summary.finished_trials = finished
        summary.best_value = high if r["objective_direction"] == "maximize" else low
        items.append(summary)
    return GroupPage(items=items, next_cursor=str(items[-1].id) if more else None)


def _group_stats(conn: Connection, group_ids: list[int]) -> dict[int, tuple[int, Any, Any]]:
    """Per group of a page: finished trials, and the lowest and highest objective."""
    if not group_ids:
        return {}
    rows = conn.execute(
        select(
            trials.c.group_id,
            func.count().filter(trials.c.status.in_(("succeeded", "failed", "stopped"))),
            func.min(trials.c.objective).filter(trials.c.status == "succeeded"),
            func.max(trials.c.objective).filter(trials.c.status == "succeeded"),
        )
        .where(trials.c.group_id.in_(group_ids))
        .group_by(trials.c.group_id)
    ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def metric_series(
    conn: Connection, group_id: int, name: str | None, limit: int
) -> MetricSeriesList:
    """The reported time series of a group's trials (the most recent `limit` trials)."""
    if load_group(conn, group_id) is None:
        raise NotFound(f"group {group_id} does not exist")
    ids = (
        conn.execute(
            select(trials.c.id)
            .where(trials.c.group_id == group_id)
            .order_by(trials.c.id.desc())
            .limit(limit + 1)
        )
        .scalars()
        .all()
    )
    series = _series(conn, ids[:limit], name)
    return MetricSeriesList(items=series, truncated=len(ids) > limit)


def trial_metric_series(conn: Connection, trial_id: int) -> MetricSeriesList:
    if conn.execute(select(trials.c.id).where(trials.c.id == trial_id)).first() is None:
        raise NotFound(f"trial {trial_id} does not exist")
    return MetricSeriesList(items=_series(conn, [trial_id], None))


def _series(conn: Connection, trial_ids: list[int], name: str | None) -> list[MetricSeries]:
    if not trial_ids:
        return []
    query = (
        select(metrics.c.trial_id, metrics.c.name, metrics.c.step, metrics.c.value)
        .where(metrics.c.trial_id.in_(trial_ids))
        .order_by(metrics.c.trial_id, metrics.c.name, metrics.c.step)
    )
    if name is not None:
        query = query.where(metrics.c.name == name)
    out: dict[tuple[int, str], MetricSeries] = {}
    for trial_id, metric, step, value in conn.execute(query):
        entry = out.setdefault(
            (trial_id, metric), MetricSeries(trial_id=trial_id, name=metric, steps=[], values=[])
        )
        entry.steps.append(step)
        entry.values.append(value)
    return list(out.values())


def list_trials(
    conn: Connection, group_id: int, status: str | None, limit: int, cursor: int | None
) -> TrialPage:
    """Oldest first; `cursor` is the trial id the previous page ended on."""
    if load_group(conn, group_id) is None:
        raise NotFound(f"group {group_id} does not exist")
    query = select(*TRIAL_COLUMNS).where(trials.c.group_id == group_id).order_by(trials.c.id)
    if status is not None:
        query = query.where(trials.c.status == status)
    if cursor is not None:
        query = query.where(trials.c.id > cursor)
    rows = conn.execute(query.limit(limit + 1)).mappings().all()
    items = [trial_view(r) for r in rows[:limit]]
    return TrialPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


def stop_group(conn: Connection, group_id: int) -> GroupView:
    """No new suggestions; pending trials stop now, running ones at their next report."""
    group = load_group(conn, group_id, lock=True)
    if group is None:
        raise NotFound(f"group {group_id} does not exist")
    if group["status"] in ("done", "failed"):
        raise Conflict(f"group {group_id} is already {group['status']}")
    if group["status"] != "stopped":
        now = utcnow()
        mark_stopped(conn, group_id, "stopped by user", now)
    return group_view(conn, load_group(conn, group_id))


def mark_stopped(
    conn: Connection, group_id: int, reason: str, now: datetime, *, status: str = "stopped"
) -> None:
    """End a group early (`stopped`, or `failed`); running trials hear it at their next report."""
    conn.execute(
        update(groups)
        .where(groups.c.id == group_id)
        .values(status=status, status_reason=reason, finished_at=now, updated_at=now)
    )
    conn.execute(
        update(trials)
        .where(trials.c.group_id == group_id, trials.c.status == "pending")
        .values(status="stopped", stop_reason=reason, finished_at=now)
    )
    log.info(
        "group.failed" if status == "failed" else "group.stopped", group_id=group_id, reason=reason
    )


def delete_group(conn: Connection, group_id: int) -> Deleted:
    deleted = conn.execute(delete(groups).where(groups.c.id == group_id)).rowcount
    if not deleted:
        raise NotFound(f"group {group_id} does not exist")
    log.info("group.deleted", group_id=group_id)
    return Deleted(id=group_id)


def export_rows(db: Database, group_id: int, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every trial of a group as a flat dict, read in pages so memory stays flat."""
    with db.read() as conn:
        if load_group(conn, group_id) is None:
            raise NotFound(f"group {group_id} does not exist")
    last = 0
    while True:
        with db.read() as conn:
            rows = (
                conn.execute(
                    select(*TRIAL_COLUMNS)
                    .where(trials.c.group_id == group_id, trials.c.id > last)
                    .order_by(trials.c.id)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
        if not rows:
            return
        for row in rows:
            yield trial_view(row).model_dump(mode="json")
        last = rows[-1]["id"]

"""Turning table rows into the API's views."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, func, select

from app.db.tables import groups, trials
from app.schemas.api import (
    GroupSummary,
    GroupView,
    Objective,
    RungView,
    TrialCounts,
    TrialView,
)
from app.services.searchers import searcher_for

TRIAL_COLUMNS = (
    trials.c.id,
    trials.c.group_id,
    trials.c.config_index,
    trials.c.attempt,
    trials.c.params,
    trials.c.status,
    trials.c.worker_id,
    trials.c.lease_expires_at,
    trials.c.objective,
    trials.c["values"],
    trials.c.stop_reason,
    trials.c.replaces_id,
    trials.c.bracket,
    trials.c.rung,
    trials.c.resource,
    trials.c.resume_from,
    trials.c.resume,
    trials.c.reason,
    trials.c.source,
    trials.c.created_at,
    trials.c.started_at,
    trials.c.finished_at,
)


def trial_view(row: Mapping[str, Any]) -> TrialView:
    return TrialView.model_validate({c.name: row[c.name] for c in TRIAL_COLUMNS})


def objective_of(group: Mapping[str, Any]) -> Objective | None:
    if group["objective_name"] is None:
        return None
    return Objective(name=group["objective_name"], optimization=group["objective_direction"])


def group_summary(group: RowMapping) -> GroupSummary:
    return GroupSummary(
        id=group["id"],
        project_id=group["project_id"],
        name=group["name"],
        algorithm=group["algorithm"],
        status=group["status"],
        status_reason=group["status_reason"],
        concurrency=group["concurrency"],
        objective=objective_of(group),
        planned_trials=group["planned_trials"],
        proposed_trials=group["next_index"],
        created_at=group["created_at"],
        updated_at=group["updated_at"],
    )


def group_view(conn: Connection, group: RowMapping) -> GroupView:
    counts = dict(
        conn.execute(
            select(trials.c.status, func.count())
            .where(trials.c.group_id == group["id"])
            .group_by(trials.c.status)
        ).all()
    )
    return GroupView(
        **group_summary(group).model_dump(),
        description=group["description"],
        seed=group["seed"],
        lease_seconds=group["lease_seconds"],
        warnings=group["warnings"],
        counts=TrialCounts(**counts),
        best_trial=best_trial(conn, group),
        hptuning=group["spec"],
        rungs=rung_views(conn, group) if group["algorithm"] == "hyperband" else None,
        started_at=group["started_at"],
        finished_at=group["finished_at"],
    )


def superseded_reoffer() -> Any:
    """True of a re-offer overtaken by the late completion of the trial it replaced.

    That trial holds the configuration's slot; the re-offer was stopped and
    counts nowhere (not as a promotion, not in a rung's history).
    """
    replaced = trials.alias("replaced")
    return (
        select(replaced.c.id)
        .where(replaced.c.id == trials.c.replaces_id, replaced.c.status != "expired")
        .exists()
    )


def rung_views(conn: Connection, group: RowMapping) -> list[RungView]:
    """Per rung: the plan's size and resource, counts by status, promotions, best value."""
    plan = searcher_for(group).brackets
    maximize = group["objective_direction"] == "maximize"
    rows = conn.execute(
        select(
            trials.c.bracket,
            trials.c.rung,
            trials.c.status,
            func.count(),
            func.max(trials.c.objective) if maximize else func.min(trials.c.objective),
        )
        .where(trials.c.group_id == group["id"], ~superseded_reoffer())
        .group_by(trials.c.bracket, trials.c.rung, trials.c.status)
    ).all()
    counts: dict[tuple[int, int], dict[str, int]] = {}
    best: dict[tuple[int, int], float] = {}
    for bracket, rung, status, n, value in rows:
        counts.setdefault((bracket, rung), {})[status] = n
        if status == "succeeded" and value is not None:
            best[(bracket, rung)] = value
    views = []
    for bracket in plan:
        for r in bracket.rungs:
            key = (r.bracket, r.rung)
            above = counts.get((r.bracket, r.rung + 1), {})
            views.append(
                RungView(
                    bracket=r.bracket,
                    rung=r.rung,
                    resource=r.resource,
                    planned=None if group["planned_trials"] is None else r.size,
                    counts=TrialCounts(**counts.get(key, {})),
                    promoted=sum(n for status, n in above.items() if status != "expired"),
                    best_value=best.get(key),
                )
            )
    return views


def best_trial(conn: Connection, group: Mapping[str, Any]) -> TrialView | None:
    if group["objective_name"] is None:
        return None
    order = (
        trials.c.objective.desc()
        if group["objective_direction"] == "maximize"
        else trials.c.objective.asc()
    )
    row = (
        conn.execute(
            select(*TRIAL_COLUMNS)
            .where(
                trials.c.group_id == group["id"],
                trials.c.status == "succeeded",
                trials.c.objective.is_not(None),
            )
            .order_by(order, trials.c.id)
            .limit(1)
        )
        .mappings()
        .first()
    )
    return trial_view(row) if row else None


def load_group(conn: Connection, group_id: int, *, lock: bool = False) -> RowMapping | None:
    query = select(groups).where(groups.c.id == group_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()

"""Model-based groups (bo, tpe): suggestions from a queue, or computed on demand.

An `hpo worker` process keeps a few suggestions ready per group in
`suggestion_queue`, computed from the finished trials at that moment (`basis`)
with the running ones as pending points. A suggest call hands those out when
they are still fresh (no trial finished since) and computes the rest itself.
"""

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, RowMapping, delete, func, insert, select

from app.algorithms import ModelBased
from app.algorithms.base import Observation
from app.db.tables import suggestion_queue, trials, utcnow

log = structlog.get_logger(__name__)

FINISHED_STATUSES = ("succeeded", "failed", "stopped")


class NoObservations(Exception):
    """The initial trials all ended without the metric: the group cannot go on."""


def finished_count(conn: Connection, group_id: int) -> int:
    return conn.execute(
        select(func.count()).where(
            trials.c.group_id == group_id, trials.c.status.in_(FINISHED_STATUSES)
        )
    ).scalar_one()


def model_inputs(
    conn: Connection, group_id: int
) -> tuple[list[Observation], list[dict[str, Any]], set[str]]:
    """What the model sees: observations, pending configurations, and every hash taken.

    Failed trials and trials without the metric are not observations; running
    and pending (re-offered) trials are pending points.
    """
    # In the order of the draws: without it PostgreSQL returns rows as they lie in the
    # heap, where each completed trial's new row version lands, and the model, fed the
    # same results in another order, rounds differently and suggests something else.
    rows = conn.execute(
        select(trials.c.params, trials.c.params_hash, trials.c.status, trials.c.objective)
        .where(trials.c.group_id == group_id, trials.c.status != "expired")
        .order_by(trials.c.config_index, trials.c.id)
    ).all()
    observations = [
        Observation(params=r.params, value=r.objective)
        for r in rows
        if r.status in ("succeeded", "stopped") and r.objective is not None
    ]
    pending = [r.params for r in rows if r.status in ("running", "pending")]
    return observations, pending, {r.params_hash for r in rows}


def propose(
    conn: Connection, group: RowMapping, searcher: ModelBased, wanted: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `wanted` new configurations for a locked group; and whether its budget is spent."""
    group_id, next_index = group["id"], group["next_index"]
    wanted = min(wanted, searcher.planned - next_index)
    if wanted <= 0:
        return [], next_index >= searcher.planned
    basis, observed = conn.execute(
        select(
            func.count(),
            func.count().filter(trials.c.status != "failed", trials.c.objective.is_not(None)),
        ).where(trials.c.group_id == group_id, trials.c.status.in_(FINISHED_STATUSES))
    ).one()
    if observed == 0 and basis >= searcher.n_initial_trials:
        raise NoObservations(
            f"none of the {basis} finished trials reported the metric "
            f"`{group['objective_name']}`: the model has nothing to learn from"
        )
    # TODO(hpo): a client that asks right after completing finds every queued entry
    # stale and waits for a fit; serving the batch of the previous basis (it saw the
    # finished trial as pending) would be quicker but is refused by #4's rule (#4).
    rows = _take_fresh(conn, group_id, basis, wanted)
    if len(rows) < wanted:
        started = utcnow()
        observations, pending, taken = model_inputs(conn, group_id)
        pending += [r["params"] for r in rows]
        taken |= {r["params_hash"] for r in rows}
        made = searcher.optimizer.suggest(
            observations, pending, taken, wanted - len(rows), draw_index=next_index + len(rows)
        )
        rows += [
            {"params": s.params, "params_hash": s.params_hash, "reason": s.reason} for s in made
        ]
        log.info(
            "suggestion.computed",
            group_id=group_id,
            n=len(made),
            n_observations=len(observations),
            duration_ms=round((utcnow() - started).total_seconds() * 1000, 1),
        )
    for i, row in enumerate(rows):
        row["config_index"] = next_index + i
    spent = next_index + len(rows) >= searcher.planned
    # Fewer than asked and none in the queue: a discrete space has no untried point left.
    exhausted = len(rows) < wanted
    return rows, spent or exhausted


def _take_fresh(conn: Connection, group_id: int, basis: int, limit: int) -> list[dict[str, Any]]:
    """Pop queued suggestions made from the current results; drop the stale ones."""
    conn.execute(
        delete(suggestion_queue).where(
            suggestion_queue.c.group_id == group_id, suggestion_queue.c.basis != basis
        )
    )
    queued = conn.execute(
        select(
            suggestion_queue.c.id,
            suggestion_queue.c.params,
            suggestion_queue.c.params_hash,
            suggestion_queue.c.reason,
        )
        .where(suggestion_queue.c.group_id == group_id)
        .order_by(suggestion_queue.c.id)
        .limit(limit)
    ).all()
    if not queued:
        return []
    conn.execute(delete(suggestion_queue).where(suggestion_queue.c.id.in_([q.id for q in queued])))
    # A queued point may have been handed out on demand meanwhile (same model, same draw).
    taken = set(
        conn.execute(
            select(trials.c.params_hash).where(
                trials.c.group_id == group_id,
                trials.c.params_hash.in_([q.params_hash for q in queued]),
            )
        ).scalars()
    )
    return [
        {"params": q.params, "params_hash": q.params_hash, "reason": q.reason | {"queued": True}}
        for q in queued
        if q.params_hash not in taken
    ]


def queue_suggestions(
    conn: Connection,
    group_id: int,
    basis: int,
    made: list[Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(suggestion_queue),
        [
            {
                "group_id": group_id,
                "params": s.params,
                "params_hash": s.params_hash,
                "reason": s.reason,
                "basis": basis,
                "created_at": now,
            }
            for s in made
        ],
    )

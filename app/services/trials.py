"""The trial lifecycle: suggest, report metrics, heartbeat, complete.

Statuses: `pending` (an expired trial's configuration waiting to be handed out
again), `running` (handed out, under a lease), then one of `succeeded`,
`failed`, `stopped`, or `expired` (its lease ran out and its configuration was
re-offered as a new trial).

Lock order, to keep PostgreSQL free of deadlocks: the group row first, then
trial rows. Suggest locks the group; a completion locks it only when the group
may be finishing.
"""

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.algorithms import ModelBased, Searcher, stopping
from app.algorithms.hyperband import Hyperband, RungTrial
from app.algorithms.space import params_hash
from app.db.tables import groups, metrics, trials, utcnow
from app.errors import Conflict, InvalidRequest, NotFound
from app.observability import LEASE_EXPIRIES, SUGGESTIONS
from app.schemas.api import StopAnswer, SuggestionResponse, TrialView
from app.services import fastpath, modelsearch, tx
from app.services.groups import FINISHED, check_params, mark_stopped
from app.services.searchers import searcher_for
from app.services.views import TRIAL_COLUMNS, load_group, superseded_reoffer, trial_view

log = structlog.get_logger(__name__)

# Seconds a client should wait before asking again, when it got nothing.
RETRY_WHEN_FULL = 1.0
RETRY_WHEN_DRAINING = 5.0


def suggest(
    conn: Connection, group_id: int, count: int, worker_id: str | None
) -> SuggestionResponse:
    """Hand out up to `count` trials, never more than the group's concurrency at once."""
    now = utcnow()
    if count == 1 and (fast := fastpath.suggest_one(conn, group_id, worker_id, now)):
        trial, algorithm = fast
        tx.after_commit(conn, lambda: _log_handed(group_id, algorithm, [trial], worker_id))
        return SuggestionResponse(trials=[trial], group_status="running")
    group = load_group(conn, group_id, lock=True)
    if group is None:
        raise NotFound(f"group {group_id} does not exist")
    if group["status"] in FINISHED:
        return SuggestionResponse(trials=[], group_status=group["status"])

    running, pending, oldest_lease = conn.execute(
        select(
            func.count().filter(trials.c.status == "running"),
            func.count().filter(trials.c.status == "pending"),
            func.min(trials.c.lease_expires_at).filter(trials.c.status == "running"),
        ).where(trials.c.group_id == group_id, trials.c.status.in_(("running", "pending")))
    ).one()
    if oldest_lease is not None and oldest_lease.replace(tzinfo=now.tzinfo) <= now:
        expired = expire_leases(conn, group_id, now)
        running -= expired
        pending += expired

    lease_until = now + timedelta(seconds=group["lease_seconds"])
    wanted = min(count, group["concurrency"] - running)
    handed: list[TrialView] = []
    if wanted > 0 and pending > 0:
        handed += _claim_pending(conn, group_id, wanted, worker_id, now, lease_until)
        wanted -= len(handed)

    changes: dict[str, Any] = {}
    searcher = searcher_for(group)
    if isinstance(searcher, Hyperband):
        # Reading the rungs is the costly part: skip it when nothing could be handed out.
        rows, complete = (
            _propose_rungs(conn, group, searcher, wanted) if wanted > 0 else ([], False)
        )
    elif isinstance(searcher, ModelBased):
        try:
            rows, complete = modelsearch.propose(conn, group, searcher, wanted)
        except modelsearch.NoObservations as exc:
            mark_stopped(conn, group_id, str(exc), now, status="failed")
            return SuggestionResponse(trials=handed, group_status="failed")
    else:
        rows, complete = _propose_counted(conn, group, searcher, wanted, changes)
    if rows:
        handed += _insert_running(conn, group_id, rows, worker_id, now, lease_until)
        changes.setdefault("next_index", group["next_index"] + len(rows))

    status = group["status"]
    if handed and status == "created":
        status = changes["status"] = "running"
        changes["started_at"] = now
    if not handed and complete and running == 0 and pending == 0:
        status = changes["status"] = "done"
        changes["finished_at"] = now
        log.info("group.done", group_id=group_id)
    if changes:
        conn.execute(
            update(groups).where(groups.c.id == group_id).values(updated_at=now, **changes)
        )

    algorithm = group["algorithm"]
    tx.after_commit(conn, lambda: _log_handed(group_id, algorithm, handed, worker_id))
    retry_after = None
    if not handed and status not in FINISHED:
        # Full: a slot frees when any trial ends. Not full but nothing to give: the
        # algorithm waits for results (a rung to finish, the last trials to end).
        retry_after = RETRY_WHEN_FULL if wanted <= 0 else RETRY_WHEN_DRAINING
    return SuggestionResponse(trials=handed, group_status=status, retry_after=retry_after)


def _log_handed(
    group_id: int, algorithm: str, handed: list[TrialView], worker_id: str | None
) -> None:
    SUGGESTIONS.labels(algorithm).inc(len(handed))
    for trial in handed:
        log.info(
            "trial.suggested",
            group_id=group_id,
            trial_id=trial.id,
            config_index=trial.config_index,
            attempt=trial.attempt,
            worker_id=worker_id,
        )


def _propose_counted(
    conn: Connection, group: RowMapping, searcher: Searcher, wanted: int, changes: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Grid and random: the next configurations after the group's counter.

    Returns the rows to insert and whether the plan is used up.
    """
    start, planned = group["next_index"], group["planned_trials"]
    taken = _taken_in(conn, group["id"])
    rows: list[dict[str, Any]] = []
    cursor = start
    while len(rows) < wanted and cursor < planned:
        batch = searcher.propose(cursor, wanted - len(rows), taken)
        cursor += len(batch.proposals)
        fresh = batch.proposals
        if group["injected_trials"]:
            # The user enqueued or imported configurations: the algorithm's own
            # draw of one of those is skipped, not run twice.
            seen = taken({p.params_hash for p in fresh})
            fresh = [p for p in fresh if p.params_hash not in seen]
        rows += [
            {"config_index": p.config_index, "params": p.params, "params_hash": p.params_hash}
            for p in fresh
        ]
        if batch.exhausted or not batch.proposals:
            planned = cursor
            changes["planned_trials"] = planned
            changes["warnings"] = [
                *group["warnings"],
                f"no new configuration could be drawn after {planned}: the space is exhausted",
            ]
            break
    if cursor != start:
        changes["next_index"] = cursor
    return rows, cursor >= planned


def _propose_rungs(
    conn: Connection, group: RowMapping, searcher: Hyperband, wanted: int
) -> tuple[list[dict[str, Any]], bool]:
    """Hyperband: new configurations and promotions, decided from the group's rungs."""
    batch = searcher.propose(rung_history(conn, group["id"]), wanted, group["next_index"])
    resume = bool(group["spec"]["hyperband"].get("resume"))
    rows = [
        {
            "config_index": p.slot,
            "params": p.params,
            "params_hash": p.params_hash,
            "bracket": p.bracket,
            "rung": p.rung,
            "resource": p.resource,
            "resume_from": p.resume_from,
            "resume": resume if p.resume_from is not None else None,
        }
        for p in batch.proposals
    ]
    return rows, batch.complete


def rung_history(conn: Connection, group_id: int) -> list[RungTrial]:
    """Every trial of a Hyperband group as its algorithm sees it (a few hundred rows).

    A re-offer superseded by the late completion of the trial it replaced is left
    out: that trial holds the slot.
    """
    rows = conn.execute(
        select(
            trials.c.id,
            trials.c.config_index,
            trials.c.bracket,
            trials.c.rung,
            trials.c.status,
            trials.c.objective,
            trials.c.params,
            trials.c.resume_from,
        ).where(trials.c.group_id == group_id, ~superseded_reoffer())
    ).all()
    return [
        RungTrial(
            id=r.id,
            slot=r.config_index,
            bracket=r.bracket,
            rung=r.rung,
            status=r.status,
            value=r.objective,
            params=r.params,
            resume_from=r.resume_from,
        )
        for r in rows
    ]


def _taken_in(conn: Connection, group_id: int):  # noqa: ANN202 - a TakenFn
    def taken(hashes: Collection[str]) -> set[str]:
        rows = conn.execute(
            select(trials.c.params_hash).where(
                trials.c.group_id == group_id, trials.c.params_hash.in_(list(hashes))
            )
        )
        return set(rows.scalars())

    return taken


def _insert_running(
    conn: Connection,
    group_id: int,
    proposed: list[dict[str, Any]],
    worker_id: str | None,
    now: datetime,
    lease_until: datetime,
) -> list[TrialView]:
    rows = [
        {
            "group_id": group_id,
            "attempt": 0,
            "status": "running",
            "worker_id": worker_id,
            "lease_expires_at": lease_until,
            "created_at": now,
            "started_at": now,
            **p,
        }
        for p in proposed
    ]
    if len(rows) == 1:
        ids = [conn.execute(insert(trials).values(rows[0]).returning(trials.c.id)).scalar_one()]
    else:
        result = conn.execute(
            insert(trials).returning(trials.c.id, sort_by_parameter_order=True), rows
        )
        ids = list(result.scalars())
    return [TrialView(id=i, **row) for i, row in zip(ids, rows, strict=True)]


def _claim_pending(
    conn: Connection,
    group_id: int,
    limit: int,
    worker_id: str | None,
    now: datetime,
    lease_until: datetime,
) -> list[TrialView]:
    # The group row is locked, so no other transaction claims these at the same time.
    ids = (
        conn.execute(
            select(trials.c.id)
            .where(trials.c.group_id == group_id, trials.c.status == "pending")
            .order_by(trials.c.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    rows = (
        conn.execute(
            update(trials)
            .where(trials.c.id.in_(ids))
            .values(
                status="running", worker_id=worker_id, lease_expires_at=lease_until, started_at=now
            )
            .returning(*TRIAL_COLUMNS)
        )
        .mappings()
        .all()
    )
    return sorted((trial_view(r) for r in rows), key=lambda t: t.id)


# What a re-offer copies from the trial whose lease expired.
_OFFER_COLUMNS = (
    trials.c.id,
    trials.c.config_index,
    trials.c.attempt,
    trials.c.params,
    trials.c.params_hash,
    trials.c.bracket,
    trials.c.rung,
    trials.c.resource,
    trials.c.resume_from,
    trials.c.resume,
)


def expire_leases(conn: Connection, group_id: int, now: datetime) -> int:
    """Mark trials whose lease ran out `expired` and re-offer each configuration."""
    expired = conn.execute(
        update(trials)
        .where(
            trials.c.group_id == group_id,
            trials.c.status == "running",
            trials.c.lease_expires_at <= now,
        )
        .values(status="expired", finished_at=now, stop_reason="lease expired")
        .returning(*_OFFER_COLUMNS)
    ).all()
    for old in expired:
        new_id = conn.execute(
            insert(trials)
            .values(
                group_id=group_id,
                **{c.name: old._mapping[c.name] for c in _OFFER_COLUMNS[3:]},
                config_index=old.config_index,
                attempt=old.attempt + 1,
                status="pending",
                replaces_id=old.id,
                created_at=now,
            )
            .returning(trials.c.id)
        ).scalar_one()
        LEASE_EXPIRIES.inc()
        log.info("trial.expired", group_id=group_id, trial_id=old.id, reoffered_as=new_id)
    return len(expired)


def _load_trial(conn: Connection, trial_id: int) -> RowMapping:
    row = (
        conn.execute(
            select(
                *TRIAL_COLUMNS,
                groups.c.status.label("group_status"),
                groups.c.algorithm,
                groups.c.objective_direction,
                groups.c.lease_seconds,
                groups.c.objective_name,
                groups.c.next_index,
                groups.c.planned_trials,
                groups.c.early_stopping,
            )
            .join(groups, groups.c.id == trials.c.group_id)
            .where(trials.c.id == trial_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"trial {trial_id} does not exist")
    return row


def enqueue(conn: Connection, group_id: int, params: dict[str, Any]) -> TrialView:
    """A configuration the user wants tried: handed out before the algorithm's own."""
    now = utcnow()
    group = load_group(conn, group_id, lock=True)
    if group is None:
        raise NotFound(f"group {group_id} does not exist")
    if group["status"] in FINISHED:
        raise Conflict(f"group {group_id} is {group['status']}")
    searcher = searcher_for(group)
    if isinstance(searcher, Hyperband):
        raise Conflict(
            "a Hyperband group places every trial in a rung of its plan; "
            "enqueue configurations into grid, random, bo, tpe or mapping groups"
        )
    problems = check_params(searcher, group["spec"], params)
    if problems:
        raise InvalidRequest(
            "the configuration does not fit the search space",
            errors=[
                {"path": f"params.{name}", "message": message, "type": "invalid_param"}
                for name, message in problems
            ],
        )
    lowest = conn.execute(
        select(func.min(trials.c.config_index)).where(trials.c.group_id == group_id)
    ).scalar()
    row = (
        conn.execute(
            insert(trials)
            .values(
                group_id=group_id,
                config_index=min(lowest or 0, 0) - 1,
                attempt=0,
                params=params,
                params_hash=params_hash(params),
                status="pending",
                source="user",
                created_at=now,
            )
            .returning(*TRIAL_COLUMNS)
        )
        .mappings()
        .one()
    )
    conn.execute(
        update(groups)
        .where(groups.c.id == group_id)
        .values(injected_trials=groups.c.injected_trials + 1, updated_at=now)
    )
    log.info("trial.enqueued", group_id=group_id, trial_id=row["id"])
    return trial_view(row)


def get_trial(conn: Connection, trial_id: int) -> TrialView:
    return trial_view(_load_trial(conn, trial_id))


def report_metrics(
    conn: Connection, trial_id: int, values: dict[str, float], step: int | None
) -> StopAnswer:
    """Store one step of a time series; the answer says whether to stop training."""
    now = utcnow()
    trial = _load_trial(conn, trial_id)
    if trial["status"] == "pending":
        raise Conflict(f"trial {trial_id} has not been handed out yet")
    if step is None:
        last = conn.execute(
            select(func.max(metrics.c.step)).where(
                metrics.c.trial_id == trial_id, metrics.c.name.in_(list(values))
            )
        ).scalar()
        step = 0 if last is None else last + 1
    _store_metrics(conn, trial_id, values, step, now)
    answer = _keep_alive(conn, trial, now)
    if not answer.should_stop and trial["status"] == "running":
        verdict = _apply_policies(conn, trial, values, step)
        if verdict is not None:
            _stop_trial(conn, trial, verdict, now)
            return StopAnswer(should_stop=True, reason=verdict)
    if not answer.should_stop:
        _check_thresholds(conn, trial, values, now)
    log.debug("trial.metrics", group_id=trial["group_id"], trial_id=trial_id, step=step)
    return answer


def _apply_policies(
    conn: Connection, trial: RowMapping, values: dict[str, float], step: int
) -> str | None:
    """Per-trial early stopping (median, average, truncation, diff): the reason to stop, if any."""
    for entry in trial["early_stopping"] or []:
        policy, metric = entry.get("policy"), entry["metric"]
        if not policy or metric not in values:
            continue
        others = (
            conn.execute(
                select(metrics.c.value)
                .join(trials, trials.c.id == metrics.c.trial_id)
                .where(
                    trials.c.group_id == trial["group_id"],
                    trials.c.id != trial["id"],
                    metrics.c.name == metric,
                    metrics.c.step == step,
                )
            )
            .scalars()
            .all()
        )
        if not stopping.should_evaluate(policy, step, len(others)):
            continue
        own = conn.execute(
            select(metrics.c.step, metrics.c.value)
            .where(
                metrics.c.trial_id == trial["id"],
                metrics.c.name == metric,
                metrics.c.step <= step,
            )
            .order_by(metrics.c.step)
        ).all()
        verdict = stopping.evaluate_policy(
            policy,
            metric=metric,
            maximize=entry.get("optimization", "maximize") == "maximize",
            step=step,
            own=[(r.step, r.value) for r in own],
            others=others,
        )
        if verdict.stop:
            return verdict.reason or f"{policy['kind']} rule on {metric}"
    return None


def _stop_trial(conn: Connection, trial: RowMapping, reason: str, now: datetime) -> None:
    """End a trial that a stopping rule caught; its slot is free at once."""
    conn.execute(
        update(trials)
        .where(trials.c.id == trial["id"], trials.c.status == "running")
        .values(
            status="stopped",
            stop_reason=reason,
            finished_at=now,
            lease_expires_at=None,
            objective=_objective_value(conn, trial, None),
        )
    )
    log.info("trial.stopped_early", group_id=trial["group_id"], trial_id=trial["id"], reason=reason)


def heartbeat(conn: Connection, trial_id: int) -> StopAnswer:
    now = utcnow()
    trial = _load_trial(conn, trial_id)
    if trial["status"] == "pending":
        raise Conflict(f"trial {trial_id} has not been handed out yet")
    return _keep_alive(conn, trial, now)


def _store_metrics(
    conn: Connection, trial_id: int, values: dict[str, float], step: int, now: datetime
) -> None:
    """Insert each value; a repeat of a stored (name, step) must carry the same value."""
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    rows = [
        {"trial_id": trial_id, "name": n, "step": step, "value": v, "created_at": now}
        for n, v in values.items()
    ]
    stmt = insert_(metrics).on_conflict_do_nothing().returning(metrics.c.name)
    inserted = (
        set(conn.execute(stmt, rows).scalars())
        if len(rows) > 1
        else set(conn.execute(stmt.values(rows[0])).scalars())
    )
    repeated = [n for n in values if n not in inserted]
    if not repeated:
        return
    stored = dict(
        conn.execute(
            select(metrics.c.name, metrics.c.value).where(
                metrics.c.trial_id == trial_id, metrics.c.step == step, metrics.c.name.in_(repeated)
            )
        ).all()
    )
    clashes = {n: (stored[n], values[n]) for n in repeated if stored.get(n) != values[n]}
    if clashes:
        detail = ", ".join(f"{n}: stored {a}, sent {b}" for n, (a, b) in clashes.items())
        raise Conflict(f"trial {trial_id} already has other values at step {step} ({detail})")


def _keep_alive(conn: Connection, trial: RowMapping, now: datetime) -> StopAnswer:
    """Extend a running trial's lease, or tell a trial that should not go on why."""
    trial_id, group_id = trial["id"], trial["group_id"]
    status = trial["status"]
    lease_until = now + timedelta(seconds=trial["lease_seconds"])
    if status == "expired":
        if _revive(conn, trial, lease_until):
            return StopAnswer(should_stop=False, lease_expires_at=lease_until)
        return StopAnswer(should_stop=True, reason=_superseded_reason(conn, trial_id))
    if status != "running":
        return StopAnswer(should_stop=True, reason=trial["stop_reason"] or f"trial is {status}")
    conn.execute(update(trials).where(trials.c.id == trial_id).values(lease_expires_at=lease_until))
    if trial["group_status"] in FINISHED:
        return StopAnswer(
            should_stop=True,
            reason=f"group is {trial['group_status']}",
            lease_expires_at=lease_until,
        )
    if trial["stop_reason"]:
        return StopAnswer(
            should_stop=True, reason=trial["stop_reason"], lease_expires_at=lease_until
        )
    log.debug("trial.lease_extended", group_id=group_id, trial_id=trial_id)
    return StopAnswer(should_stop=False, lease_expires_at=lease_until)


def _replacement(conn: Connection, trial_id: int) -> RowMapping | None:
    return (
        conn.execute(select(trials.c.id, trials.c.status).where(trials.c.replaces_id == trial_id))
        .mappings()
        .first()
    )


def _revive(conn: Connection, trial: RowMapping, lease_until: datetime) -> bool:
    """An expired trial reported after all: take it back if its re-offer was not handed out."""
    replacement = _replacement(conn, trial["id"])
    if (
        replacement is None
        or replacement["status"] != "pending"
        or trial["group_status"] in FINISHED
    ):
        return False
    conn.execute(delete(trials).where(trials.c.id == replacement["id"]))
    conn.execute(
        update(trials)
        .where(trials.c.id == trial["id"])
        .values(status="running", lease_expires_at=lease_until, stop_reason=None, finished_at=None)
    )
    log.info(
        "trial.revived",
        group_id=trial["group_id"],
        trial_id=trial["id"],
        withdrawn_trial_id=replacement["id"],
    )
    return True


def _superseded_reason(conn: Connection, trial_id: int) -> str:
    replacement = _replacement(conn, trial_id)
    if replacement is None:
        return "lease expired"
    return f"lease expired; the configuration was re-offered as trial {replacement['id']}"


def complete(
    conn: Connection, trial_id: int, status: str, values: dict[str, float] | None
) -> TrialView:
    """End a trial with the client's verdict and final values."""
    now = utcnow()
    if fast := fastpath.complete(conn, trial_id, status, values, now):
        view, trial = fast
        if view.objective is None and trial["objective_name"] is not None:
            objective = _objective_value(conn, trial, values)
            conn.execute(update(trials).where(trials.c.id == trial_id).values(objective=objective))
            view.objective = objective
        tx.after_commit(
            conn,
            lambda: log.info(
                "trial.completed",
                group_id=view.group_id,
                trial_id=trial_id,
                status=status,
                objective=view.objective,
            ),
        )
        if values:
            _check_thresholds(conn, trial, values, now)
        return view
    trial = _load_trial(conn, trial_id)
    current = trial["status"]
    if current == "stopped" and trial["stop_reason"]:
        # The service stopped it (a stopping rule) before the client said so: take
        # the client's final values, keep the verdict.
        if values:
            row = (
                conn.execute(
                    update(trials)
                    .where(trials.c.id == trial_id)
                    .values(values=values, objective=_objective_value(conn, trial, values))
                    .returning(*TRIAL_COLUMNS)
                )
                .mappings()
                .one()
            )
            return trial_view(row)
        return trial_view(trial)
    if current in ("succeeded", "failed", "stopped"):
        if current == status and (values is None or values == trial["values"]):
            return trial_view(trial)  # a retry of the same completion
        raise Conflict(f"trial {trial_id} is already {current}")
    if current == "pending":
        raise Conflict(f"trial {trial_id} has not been handed out yet")

    objective = _objective_value(conn, trial, values)
    if current == "expired":
        return _complete_late(conn, trial, status, values, objective, now)

    planned = trial["planned_trials"]
    may_finish_group = trial["algorithm"] == "hyperband" or (
        planned is not None and trial["next_index"] >= planned
    )
    if may_finish_group or status == "failed":
        # Lock the group before the trial (the lock order), so that of two last
        # completions racing, the second sees the first and closes the group.
        load_group(conn, trial["group_id"], lock=True)
    finished = (
        conn.execute(
            update(trials)
            .where(trials.c.id == trial_id, trials.c.status == "running")
            .values(
                status=status,
                values=values,
                objective=objective,
                finished_at=now,
                lease_expires_at=None,
            )
            .returning(*TRIAL_COLUMNS)
        )
        .mappings()
        .first()
    )
    if finished is None:  # it expired between our read and our update
        return complete(conn, trial_id, status, values)
    log.info(
        "trial.completed",
        group_id=trial["group_id"],
        trial_id=trial_id,
        status=status,
        objective=objective,
    )
    if values:
        _check_thresholds(conn, trial, values, now)
    if status == "failed":
        _check_failures(conn, trial, now)
    if may_finish_group:
        _finish_group_if_drained(conn, trial["group_id"], now)
    return trial_view(finished)


def _complete_late(
    conn: Connection,
    trial: RowMapping,
    status: str,
    values: dict[str, float] | None,
    objective: float | None,
    now: datetime,
) -> TrialView:
    """A completion from a trial whose lease had expired: keep it, count it once.

    If the re-offered configuration was not handed out yet, it is withdrawn and
    this trial counts. If it runs, this trial counts and the re-offer is stopped
    (its worker hears so at its next call). If it already finished, that one
    counts and this one stays `expired`, its values kept.
    """
    trial_id = trial["id"]
    replacement = _replacement(conn, trial_id)
    counts = replacement is None or replacement["status"] in ("pending", "running")
    if replacement is not None and replacement["status"] == "pending":
        conn.execute(delete(trials).where(trials.c.id == replacement["id"]))
    elif replacement is not None and replacement["status"] == "running":
        # It ends now, not when its worker hears of it: it must not count too, hold a
        # slot of the group, nor be re-offered once more when its own lease runs out.
        conn.execute(
            update(trials)
            .where(trials.c.id == replacement["id"])
            .values(
                status="stopped",
                stop_reason=f"superseded: trial {trial_id} reported for this configuration",
                finished_at=now,
                lease_expires_at=None,
            )
        )
    new_values: dict[str, Any] = {"values": values, "objective": objective}
    if counts:
        new_values |= {"status": status, "finished_at": now, "stop_reason": None}
    row = (
        conn.execute(
            update(trials)
            .where(trials.c.id == trial_id)
            .values(**new_values)
            .returning(*TRIAL_COLUMNS)
        )
        .mappings()
        .one()
    )
    log.info(
        "trial.completed_late",
        group_id=trial["group_id"],
        trial_id=trial_id,
        status=row["status"],
        counted=counts,
        replacement_id=replacement["id"] if replacement else None,
    )
    if counts:
        _finish_group_if_drained(conn, trial["group_id"], now)
    return trial_view(row)


def _objective_value(
    conn: Connection, trial: RowMapping, values: dict[str, float] | None
) -> float | None:
    """The objective from the final values, else the last value reported for it."""
    name = trial["objective_name"]
    if name is None:
        return None
    if values and name in values:
        return values[name]
    return conn.execute(
        select(metrics.c.value)
        .where(metrics.c.trial_id == trial["id"], metrics.c.name == name)
        .order_by(metrics.c.step.desc())
        .limit(1)
    ).scalar()


def _finish_group_if_drained(conn: Connection, group_id: int, now: datetime) -> None:
    group = load_group(conn, group_id, lock=True)
    if group is None or group["status"] not in ("created", "running"):
        return
    searcher = searcher_for(group)
    if not isinstance(searcher, Hyperband) and group["next_index"] < group["planned_trials"]:
        return
    unfinished = conn.execute(
        select(func.count()).where(
            trials.c.group_id == group_id, trials.c.status.in_(("running", "pending"))
        )
    ).scalar_one()
    if unfinished == 0 and isinstance(searcher, Hyperband):
        history = rung_history(conn, group_id)
        if not searcher.propose(history, 0, group["next_index"]).complete:
            return
    if unfinished == 0:
        conn.execute(
            update(groups)
            .where(groups.c.id == group_id)
            .values(status="done", finished_at=now, updated_at=now)
        )
        log.info("group.done", group_id=group_id)


def _check_failures(conn: Connection, trial: RowMapping, now: datetime) -> None:
    """`failure_early_stopping`: the group fails once that share of its trials failed."""
    group = load_group(conn, trial["group_id"], lock=True)
    rule = (group["spec"] if group else {}).get("failure_early_stopping")
    if group is None or not rule or group["status"] in FINISHED:
        return
    failed, finished = conn.execute(
        select(
            func.count().filter(trials.c.status == "failed"),
            func.count().filter(trials.c.status.in_(("succeeded", "failed", "stopped"))),
        ).where(trials.c.group_id == group["id"])
    ).one()
    if stopping.failure_share_exceeded(failed, group["planned_trials"], finished, rule["percent"]):
        reason = f"failure early stopping: {failed} failed trials reach {rule['percent']}%"
        mark_stopped(conn, group["id"], reason, now, status="failed")


def _check_thresholds(
    conn: Connection, trial: RowMapping, values: dict[str, float], now: datetime
) -> None:
    """Polyaxon's `early_stopping` entries: any met threshold stops the whole group."""
    entries = trial["early_stopping"] or []
    if not entries or trial["group_status"] in FINISHED:
        return
    for entry in entries:
        value = values.get(entry["metric"])
        if value is None or entry.get("policy"):
            continue  # an entry with a policy stops single trials, not the group
        maximize = entry.get("optimization", "maximize") == "maximize"
        if stopping.threshold_met(value, entry["value"], maximize=maximize):
            sign = ">=" if maximize else "<="
            reason = (
                f"early stopping: {entry['metric']} = {value} {sign} {entry['value']} "
                f"(trial {trial['id']})"
            )
            group = load_group(conn, trial["group_id"], lock=True)
            if group is not None and group["status"] not in FINISHED:
                mark_stopped(conn, trial["group_id"], reason, now)
            return

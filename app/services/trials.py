"""The trial lifecycle: suggest, report metrics, heartbeat, complete.

Statuses: `pending` (an expired trial's configuration waiting to be handed out
again), `running` (handed out, under a lease), then one of `succeeded`,
`failed`, `stopped`, or `expired` (its lease ran out and its configuration was
re-offered as a new trial).

Lock order, to keep PostgreSQL free of deadlocks: the group row first, then
trial rows. Suggest locks the group; a completion locks it only when the group
may be finishing.
"""

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.algorithms import Searcher, build_searcher
from app.db.tables import groups, metrics, trials, utcnow
from app.errors import Conflict, NotFound
from app.schemas.api import StopAnswer, SuggestionResponse, TrialView
from app.services.groups import FINISHED, mark_stopped
from app.services.views import TRIAL_COLUMNS, load_group, trial_view

log = structlog.get_logger(__name__)

# Seconds a client should wait before asking again, when it got nothing.
RETRY_WHEN_FULL = 1.0
RETRY_WHEN_DRAINING = 5.0


@lru_cache(maxsize=256)
def _searcher(
    group_id: int, created_at: datetime, algorithm: str, seed: int, spec_key: str
) -> Searcher:
    # Keyed by creation time too: SQLite may reuse the id of a deleted group.
    return build_searcher(algorithm, json.loads(spec_key), seed)


def searcher_for(group: RowMapping) -> Searcher:
    spec_key = json.dumps(group["spec"], sort_keys=False)
    return _searcher(group["id"], group["created_at"], group["algorithm"], group["seed"], spec_key)


def suggest(
    conn: Connection, group_id: int, count: int, worker_id: str | None
) -> SuggestionResponse:
    """Hand out up to `count` trials, never more than the group's concurrency at once."""
    now = utcnow()
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
    next_index = group["next_index"]
    planned = group["planned_trials"]
    if wanted > 0 and (planned is None or next_index < planned):
        batch = searcher_for(group).propose(next_index, wanted, _taken_in(conn, group_id))
        if batch.proposals:
            handed += _insert_running(conn, group_id, batch.proposals, worker_id, now, lease_until)
            next_index += len(batch.proposals)
            changes["next_index"] = next_index
        if batch.exhausted:
            planned = next_index
            changes["planned_trials"] = planned
            changes["warnings"] = [
                *group["warnings"],
                f"no new configuration could be drawn after {planned}: the space is exhausted",
            ]

    status = group["status"]
    if handed and status == "created":
        status = changes["status"] = "running"
        changes["started_at"] = now
    drained = planned is not None and next_index >= planned
    if not handed and drained and running == 0 and pending == 0:
        status = changes["status"] = "done"
        changes["finished_at"] = now
        log.info("group.done", group_id=group_id)
    if changes:
        conn.execute(
            update(groups).where(groups.c.id == group_id).values(updated_at=now, **changes)
        )

    for trial in handed:
        log.info(
            "trial.suggested",
            group_id=group_id,
            trial_id=trial.id,
            config_index=trial.config_index,
            attempt=trial.attempt,
            worker_id=worker_id,
        )
    retry_after = None
    if not handed and status not in FINISHED:
        retry_after = RETRY_WHEN_DRAINING if drained else RETRY_WHEN_FULL
    return SuggestionResponse(trials=handed, group_status=status, retry_after=retry_after)


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
    proposals: list,
    worker_id: str | None,
    now: datetime,
    lease_until: datetime,
) -> list[TrialView]:
    rows = [
        {
            "group_id": group_id,
            "config_index": p.config_index,
            "attempt": 0,
            "params": p.params,
            "params_hash": p.params_hash,
            "status": "running",
            "worker_id": worker_id,
            "lease_expires_at": lease_until,
            "created_at": now,
            "started_at": now,
        }
        for p in proposals
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
        .returning(
            trials.c.id,
            trials.c.config_index,
            trials.c.attempt,
            trials.c.params,
            trials.c.params_hash,
        )
    ).all()
    for old in expired:
        new_id = conn.execute(
            insert(trials)
            .values(
                group_id=group_id,
                config_index=old.config_index,
                attempt=old.attempt + 1,
                params=old.params,
                params_hash=old.params_hash,
                status="pending",
                replaces_id=old.id,
                created_at=now,
            )
            .returning(trials.c.id)
        ).scalar_one()
        log.info("trial.expired", group_id=group_id, trial_id=old.id, reoffered_as=new_id)
    return len(expired)


def _load_trial(conn: Connection, trial_id: int) -> RowMapping:
    row = (
        conn.execute(
            select(
                *TRIAL_COLUMNS,
                groups.c.status.label("group_status"),
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
    if not answer.should_stop:
        _check_thresholds(conn, trial, values, now)
    log.debug("trial.metrics", group_id=trial["group_id"], trial_id=trial_id, step=step)
    return answer


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
        return StopAnswer(should_stop=True, reason=f"trial is {status}")
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
    trial = _load_trial(conn, trial_id)
    current = trial["status"]
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
    may_finish_group = planned is not None and trial["next_index"] >= planned
    if may_finish_group:
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
    this trial counts. If it runs, this trial counts and the re-offer is told to
    stop. If it already finished, that one counts and this one stays `expired`,
    its values kept.
    """
    trial_id = trial["id"]
    replacement = _replacement(conn, trial_id)
    counts = replacement is None or replacement["status"] in ("pending", "running")
    if replacement is not None and replacement["status"] == "pending":
        conn.execute(delete(trials).where(trials.c.id == replacement["id"]))
    elif replacement is not None and replacement["status"] == "running":
        conn.execute(
            update(trials)
            .where(trials.c.id == replacement["id"])
            .values(stop_reason=f"superseded: trial {trial_id} reported for this configuration")
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
    if group["planned_trials"] is None or group["next_index"] < group["planned_trials"]:
        return
    unfinished = conn.execute(
        select(func.count()).where(
            trials.c.group_id == group_id, trials.c.status.in_(("running", "pending"))
        )
    ).scalar_one()
    if unfinished == 0:
        conn.execute(
            update(groups)
            .where(groups.c.id == group_id)
            .values(status="done", finished_at=now, updated_at=now)
        )
        log.info("group.done", group_id=group_id)


def _check_thresholds(
    conn: Connection, trial: RowMapping, values: dict[str, float], now: datetime
) -> None:
    """Polyaxon's `early_stopping` entries: any met threshold stops the whole group."""
    entries = trial["early_stopping"] or []
    if not entries or trial["group_status"] in FINISHED:
        return
    for entry in entries:
        value = values.get(entry["metric"])
        if value is None:
            continue
        maximize = entry.get("optimization", "maximize") == "maximize"
        if (value >= entry["value"]) if maximize else (value <= entry["value"]):
            sign = ">=" if maximize else "<="
            reason = (
                f"early stopping: {entry['metric']} = {value} {sign} {entry['value']} "
                f"(trial {trial['id']})"
            )
            group = load_group(conn, trial["group_id"], lock=True)
            if group is not None and group["status"] not in FINISHED:
                mark_stopped(conn, trial["group_id"], reason, now)
            return

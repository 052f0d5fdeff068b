"""The two calls every worker makes per trial, in as few statements as PostgreSQL allows.

A suggestion of a running grid, random or mapping group, one trial at a time,
with no re-offers waiting and no lease run out; and the completion of a
running trial whose group cannot be finishing. These are the calls that
decide a service's throughput: the suggestion holds its group's lock from its
first statement to its commit, so every statement saved there is throughput
gained. Anything else returns None and takes the general path, which handles
every case; the fast paths change nothing when they decline.

PostgreSQL only: SQLite's RETURNING cannot name the other tables of an
UPDATE ... FROM, and on one machine the general path is quick enough.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, insert, literal, or_, select, update

from app.algorithms import GridSearch, MappingSearch, RandomSearch
from app.db.tables import Json, UTCDateTime, groups, trials
from app.schemas.api import TrialView
from app.services.searchers import searcher_for
from app.services.views import TRIAL_COLUMNS, trial_view

_COUNTED = ("grid", "random", "mapping")
# Groups whose draws need a lookup (weighted or quantized random spaces): never fast.
_declined: set[int] = set()


def suggest_one(
    conn: Connection, group_id: int, worker_id: str | None, now: datetime
) -> tuple[TrialView, str] | None:
    """Hand out the group's next configuration, or None to take the general path."""
    if conn.dialect.name != "postgresql" or group_id in _declined:
        return None
    # Lock the group and take the next index in one statement.
    group = (
        conn.execute(
            update(groups)
            .where(
                groups.c.id == group_id,
                groups.c.status == "running",
                groups.c.algorithm.in_(_COUNTED),
                groups.c.injected_trials == 0,
                groups.c.next_index < groups.c.planned_trials,
            )
            .values(next_index=groups.c.next_index + 1, updated_at=now)
            .returning(
                groups.c.id,
                groups.c.created_at,
                groups.c.algorithm,
                groups.c.seed,
                groups.c.spec,
                groups.c.next_index,
                groups.c.concurrency,
                groups.c.lease_seconds,
            )
        )
        .mappings()
        .first()
    )
    if group is None:
        return None
    searcher = searcher_for(group)
    index = group["next_index"] - 1
    if not isinstance(searcher, GridSearch | RandomSearch | MappingSearch) or searcher.needs_lookup:
        _declined.add(group_id)
        _give_back(conn, group_id)
        return None
    (proposal,) = searcher.propose(index, 1).proposals
    lease_until = now + timedelta(seconds=group["lease_seconds"])
    row = {
        "group_id": group_id,
        "config_index": index,
        "attempt": 0,
        "params": proposal.params,
        "params_hash": proposal.params_hash,
        "status": "running",
        "worker_id": worker_id,
        "lease_expires_at": lease_until,
        "created_at": now,
        "started_at": now,
    }
    # Insert only if the group has room, no re-offer waiting and no lease run out;
    # the counts see every trial committed before we took the lock.
    running = (
        select(func.count())
        .where(trials.c.group_id == group_id, trials.c.status == "running")
        .scalar_subquery()
    )
    blocked = exists().where(
        trials.c.group_id == group_id,
        or_(
            trials.c.status == "pending",
            and_(trials.c.status == "running", trials.c.lease_expires_at <= now),
        ),
    )
    columns = list(row)
    inserted = conn.execute(
        insert(trials)
        .from_select(
            columns,
            select(*[literal(row[c], _type(c)) for c in columns]).where(
                running < group["concurrency"], ~blocked
            ),
        )
        .returning(trials.c.id)
    ).scalar()
    if inserted is None:
        _give_back(conn, group_id)
        return None
    return TrialView(id=inserted, **row), group["algorithm"]


def _type(column: str) -> Any:
    kind = trials.c[column].type
    return (
        Json if column == "params" else (UTCDateTime() if isinstance(kind, UTCDateTime) else kind)
    )


def _give_back(conn: Connection, group_id: int) -> None:
    conn.execute(
        update(groups).where(groups.c.id == group_id).values(next_index=groups.c.next_index - 1)
    )


def complete(
    conn: Connection,
    trial_id: int,
    status: str,
    values: dict[str, float] | None,
    now: datetime,
) -> tuple[TrialView, dict[str, Any]] | None:
    """Finish a running trial in one statement, or None to take the general path.

    Declines when the group may be finishing (its plan is handed out), for
    Hyperband (its rungs decide), and for failures (the failure share is
    checked on the general path). Returns the view and what the caller needs
    for the checks that follow: the group's id, status and early stopping.
    """
    if conn.dialect.name != "postgresql" or status == "failed":
        return None
    objective = case(values, value=groups.c.objective_name, else_=None) if values else literal(None)
    row = (
        conn.execute(
            update(trials)
            .where(
                trials.c.id == trial_id,
                trials.c.status == "running",
                trials.c.group_id == groups.c.id,
                groups.c.algorithm != "hyperband",
                groups.c.next_index < groups.c.planned_trials,
            )
            .values(
                status=status,
                values=values,
                objective=objective,
                finished_at=now,
                lease_expires_at=None,
            )
            .returning(
                *TRIAL_COLUMNS,
                groups.c.objective_name,
                groups.c.status.label("group_status"),
                groups.c.early_stopping,
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return trial_view(row), dict(row)

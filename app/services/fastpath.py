"""The two calls every worker makes per trial, in as few statements as PostgreSQL allows.

A suggestion of a running grid, random or mapping group, one trial at a time,
with no re-offers waiting and no lease run out; and the completion of a
running trial whose group cannot be finishing. These calls decide a
service's throughput: the suggestion holds its group's lock from its first
statement to its commit, so every statement (and every microsecond of Python)
saved there is throughput gained. They are written as plain SQL, so that no
statement is built or compiled per call. Anything else returns None and takes
the general path, which handles every case; a fast path that declines has
changed nothing.

PostgreSQL only: SQLite has no jsonb operators, and its RETURNING cannot name
the other tables of an UPDATE ... FROM; on one machine the general path is
quick enough.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import Connection

from app.algorithms import GridSearch, MappingSearch, RandomSearch
from app.schemas.api import TrialView
from app.services.searchers import cached_searcher, searcher_for
from app.services.views import TRIAL_COLUMNS, load_group

# Lock the group and take its next index, in one statement.
_TAKE_INDEX = """
UPDATE groups SET next_index = next_index + 1, updated_at = %(now)s
WHERE id = %(group_id)s AND status = 'running' AND injected_trials = 0
  AND algorithm IN ('grid', 'random', 'mapping') AND next_index < planned_trials
RETURNING id, created_at, next_index, concurrency, lease_seconds, algorithm
"""
_GIVE_BACK = "UPDATE groups SET next_index = next_index - 1 WHERE id = %(group_id)s"
# Insert only if the group has room, no re-offer waiting and no lease run out.
# This is a new statement after the lock was taken, so its snapshot sees every
# trial committed before; completions never lock the group, only suggestions do.
_INSERT_IF_ROOM = """
INSERT INTO trials (group_id, config_index, attempt, params, params_hash, status,
                    worker_id, lease_expires_at, created_at, started_at, source)
SELECT %(group_id)s, %(index)s, 0, %(params)s, %(params_hash)s, 'running',
       %(worker_id)s, %(lease)s, %(now)s, %(now)s, 'algorithm'
WHERE (SELECT count(*) FROM trials WHERE group_id = %(group_id)s AND status = 'running')
      < %(concurrency)s
  AND NOT EXISTS (
      SELECT 1 FROM trials WHERE group_id = %(group_id)s
        AND (status = 'pending' OR (status = 'running' AND lease_expires_at <= %(now)s)))
RETURNING id
"""
_TRIAL_COLUMNS = ", ".join(f't."{c.name}"' for c in TRIAL_COLUMNS)
_COMPLETE = f"""
UPDATE trials AS t
SET status = %(status)s, "values" = %(values)s, finished_at = %(now)s,
    lease_expires_at = NULL,
    objective = (%(values)s::jsonb ->> g.objective_name)::double precision
FROM groups AS g
WHERE t.id = %(trial_id)s AND t.status = 'running' AND g.id = t.group_id
  AND g.algorithm <> 'hyperband' AND g.next_index < g.planned_trials
RETURNING {_TRIAL_COLUMNS}, g.objective_name, g.status AS group_status, g.early_stopping
"""
_FAST_SEARCHERS = (GridSearch, RandomSearch, MappingSearch)
# TODO(hpo): suggestions of `count > 1`, groups with enqueued or imported trials, and
# SQLite take the general path; one lock per suggestion still serialises a group's
# workers, which is what keeps throughput under the ceiling's (#2).


def suggest_one(
    conn: Connection, group_id: int, worker_id: str | None, now: datetime
) -> tuple[TrialView, str] | None:
    """Hand out the group's next configuration, or None to take the general path."""
    if conn.dialect.name != "postgresql":
        return None
    args: dict[str, Any] = {"group_id": group_id, "now": now}
    group = conn.exec_driver_sql(_TAKE_INDEX, args).mappings().first()
    if group is None:
        return None
    searcher = cached_searcher(group) or searcher_for(load_group(conn, group_id))
    if not isinstance(searcher, _FAST_SEARCHERS) or searcher.needs_lookup:
        conn.exec_driver_sql(_GIVE_BACK, args)
        return None
    index = group["next_index"] - 1
    (proposal,) = searcher.propose(index, 1).proposals
    lease = now + timedelta(seconds=group["lease_seconds"])
    args |= {
        "index": index,
        "params": Json(proposal.params),  # json, as the column: keeps the key order
        "params_hash": proposal.params_hash,
        "worker_id": worker_id,
        "lease": lease,
        "concurrency": group["concurrency"],
    }
    trial_id = conn.exec_driver_sql(_INSERT_IF_ROOM, args).scalar()
    if trial_id is None:
        conn.exec_driver_sql(_GIVE_BACK, args)
        return None
    view = TrialView(
        id=trial_id,
        group_id=group_id,
        config_index=index,
        attempt=0,
        params=proposal.params,
        status="running",
        worker_id=worker_id,
        lease_expires_at=lease,
        created_at=now,
        started_at=now,
    )
    return view, group["algorithm"]


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
    for the checks that follow: the group's objective name, status and early
    stopping entries.
    """
    if conn.dialect.name != "postgresql" or status == "failed":
        return None
    args = {"trial_id": trial_id, "status": status, "values": Json(values), "now": now}
    row = conn.exec_driver_sql(_COMPLETE, args).mappings().first()
    if row is None:
        return None
    fields = {c.name: row[c.name] for c in TRIAL_COLUMNS}
    for name in ("lease_expires_at", "created_at", "started_at", "finished_at"):
        if fields[name] is not None:
            fields[name] = fields[name].astimezone(UTC)
    return TrialView.model_validate(fields), dict(row)

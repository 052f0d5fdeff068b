"""Periodic chores any replica may run: expire lost leases, forget old idempotency keys.

Suggest calls expire leases of their own group anyway; this sweep makes a lost
worker's trial show as `expired` (and its configuration re-offered) even while
nobody asks the group for work.
"""

from datetime import timedelta

import structlog
from sqlalchemy import delete, select

from app.db.engine import Database
from app.db.tables import groups, idempotency_keys, trials, utcnow
from app.services.trials import expire_leases

log = structlog.get_logger(__name__)


def sweep(db: Database, *, idempotency_ttl: timedelta) -> int:
    """One pass; returns how many trials it expired."""
    now = utcnow()
    with db.read() as conn:
        group_ids = (
            conn.execute(
                select(trials.c.group_id)
                .where(trials.c.status == "running", trials.c.lease_expires_at <= now)
                .distinct()
            )
            .scalars()
            .all()
        )
    expired = 0
    for group_id in group_ids:
        with db.write() as conn:
            # Another replica sweeping or suggesting holds the group: it will do the work.
            locked = conn.execute(
                select(groups.c.id).where(groups.c.id == group_id).with_for_update(skip_locked=True)
            ).first()
            if locked is not None:
                expired += expire_leases(conn, group_id, now)
    with db.write() as conn:
        forgotten = conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < now - idempotency_ttl)
        ).rowcount
    if expired or forgotten:
        log.info("housekeeping.swept", trials_expired=expired, idempotency_keys_forgotten=forgotten)
    return expired

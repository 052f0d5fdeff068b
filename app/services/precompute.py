"""The `hpo worker` loop: keep a few fresh suggestions ready for each model-based group.

Any number of workers may run, on any machine that reaches the database. A
worker computes without holding the group's lock, then stores its batch only
if no trial finished meanwhile (the batch would be stale) and only while the
group's queue is short; so two workers at most waste a computation, never
hand out anything twice.
"""

import threading
import time

import structlog
from sqlalchemy import func, select

from app.algorithms import ModelBased
from app.db.engine import Database
from app.db.tables import groups, suggestion_queue, utcnow
from app.services.modelsearch import finished_count, model_inputs, queue_suggestions
from app.services.searchers import searcher_for
from app.services.views import load_group

log = structlog.get_logger(__name__)

MODEL_BASED = ("bo", "tpe")


def run(db: Database, *, poll_seconds: float, depth: int, stop: threading.Event) -> None:
    """Refill queues until `stop` is set."""
    log.info("worker.started", poll_seconds=poll_seconds, depth=depth)
    while not stop.is_set():
        try:
            busy = refill_all(db, depth=depth)
        except Exception:  # keep serving: the next round retries, and the API computes meanwhile
            log.exception("worker.round_failed")
            busy = False
        if not busy:
            stop.wait(poll_seconds)
    log.info("worker.stopped")


def refill_all(db: Database, *, depth: int) -> bool:
    """One round over the open model-based groups; True when anything was computed."""
    with db.read() as conn:
        group_ids = (
            conn.execute(
                select(groups.c.id).where(
                    groups.c.algorithm.in_(MODEL_BASED),
                    groups.c.status.in_(("created", "running")),
                )
            )
            .scalars()
            .all()
        )
    return any([refill(db, group_id, depth=depth) for group_id in group_ids])


def refill(db: Database, group_id: int, *, depth: int) -> bool:
    """Top up one group's queue to `depth` (at most its concurrency, at most what is left)."""
    with db.read() as conn:
        group = load_group(conn, group_id)
        if group is None or group["status"] not in ("created", "running"):
            return False
        searcher = searcher_for(group)
        assert isinstance(searcher, ModelBased)
        basis = finished_count(conn, group_id)
        queued = conn.execute(
            select(suggestion_queue.c.params, suggestion_queue.c.params_hash).where(
                suggestion_queue.c.group_id == group_id, suggestion_queue.c.basis == basis
            )
        ).all()
        left = searcher.planned - group["next_index"] - len(queued)
        want = min(depth, group["concurrency"]) - len(queued)
        want = min(want, left)
        if want <= 0:
            return False
        observations, pending, taken = model_inputs(conn, group_id)
    pending += [q.params for q in queued]
    taken |= {q.params_hash for q in queued}
    started = time.perf_counter()
    made = searcher.optimizer.suggest(
        observations,
        pending,
        taken,
        want,
        draw_index=group["next_index"] + len(queued),
    )
    with db.write() as conn:
        locked = load_group(conn, group_id, lock=True)
        if locked is None or finished_count(conn, group_id) != basis:
            return True  # results moved on while we computed: the next round starts afresh
        if locked["next_index"] != group["next_index"]:
            return True  # trials were handed out meanwhile: our draw indexes are off
        depth_now = conn.execute(
            select(func.count()).where(
                suggestion_queue.c.group_id == group_id, suggestion_queue.c.basis == basis
            )
        ).scalar_one()
        if depth_now != len(queued):
            return True  # another worker filled it
        if made:
            queue_suggestions(conn, group_id, basis, made, utcnow())
    log.info(
        "worker.refilled",
        group_id=group_id,
        n=len(made),
        basis=basis,
        n_observations=len(observations),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return True

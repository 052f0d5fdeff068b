"""One use case, one transaction: retries on lock conflicts, and idempotency keys.

A request that carries an `Idempotency-Key` stores its answer in the same
transaction as its effects, so a retry (on this replica or another) is answered
with the stored result and changes nothing.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from app.db.engine import Database
from app.db.tables import idempotency_keys, utcnow
from app.errors import IdempotencyMismatch, Unavailable

T = TypeVar("T", bound=BaseModel)

# PostgreSQL's deadlock_detected and serialization_failure: safe to run again.
_RETRYABLE_SQLSTATES = {"40P01", "40001"}
_ATTEMPTS = 4
_AFTER_COMMIT = "hpo.after_commit"


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    scope: str  # method and path, so one key may serve several routes
    request_hash: str

    @classmethod
    def of(cls, key: str, method: str, path: str, body: Any) -> "IdempotencyKey":
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return cls(key, f"{method} {path}", hashlib.sha256(text.encode()).hexdigest())


def run(
    db: Database,
    fn: Callable[..., T],
    *args: Any,
    model: type[T],
    idem: IdempotencyKey | None = None,
    write: bool = True,
    keep: Callable[[T], bool] | None = None,
) -> T:
    """Run `fn(conn, *args)` in one transaction and give back its result.

    With `idem`, the result is stored for retries, unless `keep` says it is
    not worth keeping (an empty suggestion: a retry may well get trials).
    """
    for attempt in range(_ATTEMPTS):
        try:
            return _run_once(db, fn, args, model, idem, write, keep)
        except IntegrityError:
            # Two requests with one idempotency key raced: the other one stored its answer.
            if idem is None or attempt == _ATTEMPTS - 1:
                raise
        except OperationalError as exc:
            if _sqlstate(exc) not in _RETRYABLE_SQLSTATES:
                if exc.connection_invalidated:
                    raise Unavailable("the database connection was lost; try again") from exc
                raise
            if attempt == _ATTEMPTS - 1:
                raise Unavailable("the database kept reporting lock conflicts") from exc
        time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _run_once(
    db: Database,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    model: type[T],
    idem: IdempotencyKey | None,
    write: bool,
    keep: Callable[[T], bool] | None,
) -> T:
    hooks: list[Callable[[], None]] = []
    with db.write() if write else db.read() as conn:
        conn.info[_AFTER_COMMIT] = hooks
        try:
            result = _in_transaction(conn, fn, args, model, idem, keep)
        finally:
            # A connection lost mid-transaction is invalidated: its info went with it, and
            # touching it would raise over the OperationalError that `run` maps to a 503.
            if not conn.invalidated:
                del conn.info[_AFTER_COMMIT]
    for hook in hooks:
        hook()
    return result


def after_commit(conn: Connection, hook: Callable[[], None]) -> None:
    """Run `hook` once the current transaction has committed (logging, counters).

    Work that need not be inside the transaction stays out of it: a suggestion
    holds its group's lock until the commit.
    """
    conn.info[_AFTER_COMMIT].append(hook)


def _in_transaction(
    conn: Connection,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    model: type[T],
    idem: IdempotencyKey | None,
    keep: Callable[[T], bool] | None,
) -> T:
    if idem is not None:
        stored = _stored_answer(conn, idem)
        if stored is not None:
            return model.model_validate(stored)
    result = fn(conn, *args)
    if idem is not None and (keep is None or keep(result)):
        conn.execute(
            insert(idempotency_keys).values(
                scope=idem.scope,
                key=idem.key,
                request_hash=idem.request_hash,
                status_code=200,
                response=result.model_dump(mode="json"),
                created_at=utcnow(),
            )
        )
    return result


def _stored_answer(conn: Connection, idem: IdempotencyKey) -> dict[str, Any] | None:
    row = conn.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
            idempotency_keys.c.scope == idem.scope, idempotency_keys.c.key == idem.key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != idem.request_hash:
        raise IdempotencyMismatch(
            f"Idempotency-Key {idem.key!r} was used with another body on {idem.scope}"
        )
    return row.response


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)

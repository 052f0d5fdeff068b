"""The algorithm object of a group, built from its stored spec and kept per process.

A cache, not state: any process rebuilds the same object from the group's row,
and a group's spec never changes after creation.
"""

from datetime import datetime

from sqlalchemy import RowMapping

from app.algorithms import Searcher, build_searcher

_MAX_CACHED = 512
# Keyed by creation time too: SQLite may give a deleted group's id to a new one.
_cache: dict[tuple[int, datetime], Searcher] = {}


def cached_searcher(group: RowMapping) -> Searcher | None:
    """The searcher of a group already built in this process, without reading its spec."""
    return _cache.get((group["id"], group["created_at"]))


def searcher_for(group: RowMapping) -> Searcher:
    key = (group["id"], group["created_at"])
    searcher = _cache.get(key)
    if searcher is None:
        searcher = build_searcher(group["algorithm"], group["spec"], group["seed"])
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()  # crude, and enough: rebuilding costs a few microseconds
        _cache[key] = searcher
    return searcher

"""Pure search logic: numpy and scikit-learn only, never storage or HTTP."""

from typing import Any

from app.algorithms.grid import GridSearch
from app.algorithms.random import RandomSearch
from app.algorithms.space import Space

Searcher = GridSearch | RandomSearch

SUPPORTED = ("grid", "random")


def build_searcher(algorithm: str, spec: dict[str, Any], seed: int) -> Searcher:
    """The algorithm object for a group's normalised `hptuning` section."""
    space = Space.from_matrix(spec["matrix"])
    if algorithm == "grid":
        return GridSearch(space, (spec.get("grid_search") or {}).get("n_experiments"))
    if algorithm == "random":
        return RandomSearch(space, seed, spec["random_search"]["n_experiments"])
    raise ValueError(f"algorithm {algorithm!r} is not available; supported: {', '.join(SUPPORTED)}")

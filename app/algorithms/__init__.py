"""Pure search logic: numpy and scikit-learn only, never storage or HTTP."""

from typing import Any

from app.algorithms.grid import GridSearch
from app.algorithms.hyperband import Hyperband
from app.algorithms.random import RandomSearch
from app.algorithms.space import Space

Searcher = GridSearch | RandomSearch | Hyperband

SUPPORTED = ("grid", "random", "hyperband")


def build_searcher(algorithm: str, spec: dict[str, Any], seed: int) -> Searcher:
    """The algorithm object for a group's normalised `hptuning` section."""
    space = Space.from_matrix(spec["matrix"])
    if algorithm == "grid":
        return GridSearch(space, (spec.get("grid_search") or {}).get("n_experiments"))
    if algorithm == "random":
        return RandomSearch(space, seed, spec["random_search"]["n_experiments"])
    if algorithm == "hyperband":
        hb = spec["hyperband"]
        return Hyperband(
            space,
            seed=seed,
            max_iter=hb["max_iter"],
            eta=hb["eta"],
            resource_name=hb["resource"]["name"],
            resource_type=hb["resource"].get("type", "float"),
            maximize=hb["metric"].get("optimization", "maximize") == "maximize",
            asynchronous=bool(hb.get("asynchronous")),
            n_configs=hb.get("n_experiments"),
        )
    raise ValueError(f"algorithm {algorithm!r} is not available; supported: {', '.join(SUPPORTED)}")

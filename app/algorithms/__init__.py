"""Pure search logic: numpy and scikit-learn only, never storage or HTTP."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.algorithms.grid import GridSearch
from app.algorithms.hyperband import Hyperband
from app.algorithms.mapping import MappingSearch
from app.algorithms.random import RandomSearch
from app.algorithms.space import Space

if TYPE_CHECKING:  # imported where used: scikit-learn costs a second at start-up
    from app.algorithms.bayes import BayesianOptimizer
    from app.algorithms.tpe import TPE

SUPPORTED = ("grid", "random", "hyperband", "bo", "tpe", "mapping")

# What a `bo` section without `utility_function` runs with.
DEFAULT_UTILITY = {
    "acquisition_function": "ucb",
    "kappa": 2.576,
    "gaussian_process": {
        "kernel": "matern",
        "length_scale": 1.0,
        "nu": 2.5,
        "n_restarts_optimizer": 0,
    },
}


@dataclass(frozen=True)
class ModelBased:
    """A model-based search (bo, tpe) and its budget of trials."""

    optimizer: "BayesianOptimizer | TPE"
    planned: int
    n_initial_trials: int


Searcher = GridSearch | RandomSearch | Hyperband | ModelBased | MappingSearch


def build_searcher(algorithm: str, spec: dict[str, Any], seed: int) -> Searcher:
    """The algorithm object for a group's normalised `hptuning` section."""
    if algorithm == "mapping":
        return MappingSearch(spec["mapping"]["values"])
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
    if algorithm == "bo":
        return _bayesian(space, spec["bo"], seed)
    if algorithm == "tpe":
        from app.algorithms.tpe import TPE

        section = spec["tpe"]
        tpe = TPE(
            space,
            seed=seed,
            maximize=section["metric"].get("optimization", "maximize") == "maximize",
            n_initial_trials=section.get("n_initial_trials", 10),
        )
        return ModelBased(
            tpe, _capped(space, section["n_experiments"]), section.get("n_initial_trials", 10)
        )
    raise ValueError(f"algorithm {algorithm!r} is not available; supported: {', '.join(SUPPORTED)}")


def _capped(space: Space, n: int) -> int:
    return n if space.size is None else min(n, space.size)


def _bayesian(space: Space, section: dict[str, Any], seed: int) -> ModelBased:
    from app.algorithms.bayes import BayesianOptimizer

    utility = section.get("utility_function") or DEFAULT_UTILITY
    gp = utility.get("gaussian_process") or {}
    optimizer = BayesianOptimizer(
        space,
        seed=seed,
        maximize=section["metric"].get("optimization", "maximize") == "maximize",
        n_initial_trials=section["n_initial_trials"],
        acquisition=utility.get("acquisition_function", "ucb"),
        kappa=utility.get("kappa") if utility.get("kappa") is not None else 2.576,
        eps=utility.get("eps") if utility.get("eps") is not None else 0.0,
        kernel=gp.get("kernel", "matern"),
        length_scale=gp.get("length_scale", 1.0),
        nu=gp.get("nu", 1.5),
        n_restarts_optimizer=gp.get("n_restarts_optimizer", 0),
        n_warmup=utility.get("n_warmup"),
        n_iter=utility.get("n_iter"),
        pending_strategy=section.get("pending_strategy", "kriging_believer"),
    )
    planned = _capped(space, section["n_initial_trials"] + section["n_iterations"])
    return ModelBased(optimizer, planned, section["n_initial_trials"])

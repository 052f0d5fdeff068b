"""What every search algorithm gives the services: proposals for new trials."""

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

# Given fingerprints of candidate configurations, answer those already in the group.
TakenFn = Callable[[Collection[str]], set[str]]


@dataclass(frozen=True)
class Proposal:
    """One new configuration: its place in the algorithm's order and its params."""

    config_index: int
    params: dict[str, Any]
    params_hash: str


@dataclass
class Batch:
    proposals: list[Proposal] = field(default_factory=list)
    # Set when the algorithm found no more new configurations than these: the
    # group's budget shrinks to `next_index` (a small quantized space, say).
    exhausted: bool = False


@dataclass(frozen=True)
class Observation:
    """A finished trial as a model-based search sees it: its params and raw metric value."""

    params: dict[str, Any]
    value: float


@dataclass(frozen=True)
class Suggestion:
    """A configuration a model-based search proposes, and why it chose it.

    `reason` is JSON-able and goes to the trial's view as it is: at least
    "phase" ("initial" or "model"), "n_observations", "n_pending" and
    "pending_strategy"; bo adds the acquisition value and the model's predicted
    mean and deviation, tpe the log density ratio of the chosen point.
    """

    params: dict[str, Any]
    params_hash: str
    reason: dict[str, Any]

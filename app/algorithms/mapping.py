"""Mapping: an explicit list of configurations, one trial each, in the order given."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.algorithms.base import Batch, Proposal, TakenFn
from app.algorithms.space import params_hash


@dataclass(frozen=True)
class MappingSearch:
    configurations: Sequence[dict[str, Any]]

    needs_lookup = False  # its configurations are distinct by construction

    @property
    def planned(self) -> int:
        return len(self.configurations)

    def propose(self, start: int, count: int, taken: TakenFn | None = None) -> Batch:
        stop = min(start + count, self.planned)
        return Batch(
            [
                Proposal(i, dict(self.configurations[i]), params_hash(self.configurations[i]))
                for i in range(start, stop)
            ]
        )

    def check(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        """A configuration a person adds must name the same params as the list's first."""
        expected = set(self.configurations[0])
        problems = [(n, "Unknown parameter.") for n in params if n not in expected]
        problems += [(n, "This parameter is required.") for n in expected if n not in params]
        return problems

"""Grid search: the ordered product of every option's values, first key slowest."""

from dataclasses import dataclass

from app.algorithms.base import Batch, Proposal, TakenFn
from app.algorithms.space import Space, params_hash


@dataclass(frozen=True)
class GridSearch:
    space: Space
    n_experiments: int | None = None

    def __post_init__(self) -> None:
        if not self.space.is_discrete:
            raise ValueError("grid search needs a space whose every option is discrete")

    needs_lookup = False  # its configurations are distinct by construction

    @property
    def planned(self) -> int:
        """Cells to try: the whole grid, or its first `n_experiments` cells."""
        size = self.space.size or 0
        return size if self.n_experiments is None else min(size, self.n_experiments)

    def propose(self, start: int, count: int, taken: TakenFn | None = None) -> Batch:
        """Cells `start` .. `start + count - 1`, cut at the end of the plan.

        Cells of a grid are distinct by construction, so `taken` is not consulted.
        """
        stop = min(start + count, self.planned)
        proposals = []
        for index in range(start, stop):
            params = self.space.cell(index)
            proposals.append(Proposal(index, params, params_hash(params)))
        return Batch(proposals, exhausted=False)

"""Random search: draw `i` is a function of (seed, i), and no draw repeats another.

Three cases, cheapest first:
- a space with an unquantized continuous option: draws cannot repeat (but with
  probability zero), so draw `i` is simply `space.sample(seed, i)`;
- an all-discrete space without weights: draw `i` is cell `permute(i)` of the
  grid under a seeded permutation, distinct by construction and uniform;
- otherwise (pvalues weights, or only quantized continuous options): draw,
  then ask the group whether the configuration is taken and redraw if so,
  with the attempt number as part of the seed, so the sequence stays
  reproducible. A nearly full discrete space falls back to the first free cell
  in the seeded order.
"""

from dataclasses import dataclass

from app.algorithms.base import Batch, Proposal, TakenFn
from app.algorithms.space import Space, params_hash, permuted_index

MAX_REDRAWS = 64
FALLBACK_CHUNK = 256


@dataclass(frozen=True)
class RandomSearch:
    space: Space
    seed: int
    n_experiments: int

    @property
    def planned(self) -> int:
        """`n_experiments`, capped by the size of an all-discrete space."""
        size = self.space.size
        return self.n_experiments if size is None else min(size, self.n_experiments)

    @property
    def needs_lookup(self) -> bool:
        """True when draws must be checked against the group's configurations."""
        discrete_unweighted = not self.space.is_weighted and self.space.size is not None
        return self.space.can_repeat and not discrete_unweighted

    @property
    def capped(self) -> bool:
        return self.planned < self.n_experiments

    def propose(self, start: int, count: int, taken: TakenFn | None = None) -> Batch:
        stop = min(start + count, self.planned)
        if start >= stop:
            return Batch()
        if not self.space.can_repeat:
            return Batch(
                [self._proposal(i, self.space.sample(self.seed, i)) for i in range(start, stop)]
            )
        if not self.space.is_weighted and self.space.size is not None:
            size = self.space.size
            return Batch(
                [
                    self._proposal(i, self.space.cell(permuted_index(i, size, self.seed)))
                    for i in range(start, stop)
                ]
            )
        if taken is None:
            raise ValueError("a space whose draws can repeat needs a `taken` lookup")
        return self._propose_checked(start, stop, taken)

    def _propose_checked(self, start: int, stop: int, taken: TakenFn) -> Batch:
        batch = Batch()
        local: set[str] = set()  # draws of this batch, not yet in the group
        for index in range(start, stop):
            proposal = self._fresh_draw(index, taken, local)
            if proposal is None:
                batch.exhausted = True
                break
            local.add(proposal.params_hash)
            batch.proposals.append(proposal)
        return batch

    def _fresh_draw(self, index: int, taken: TakenFn, local: set[str]) -> Proposal | None:
        candidates = [
            self._proposal(index, self.space.sample(self.seed, index, a))
            for a in range(MAX_REDRAWS)
        ]
        # One lookup for all candidates: usually the first is free and the rest are unused.
        used = taken({c.params_hash for c in candidates}) | local
        for candidate in candidates:
            if candidate.params_hash not in used:
                return candidate
        size = self.space.size
        if size is None:
            return None  # quantized continuous options only: no list to fall back on
        for chunk_start in range(0, size, FALLBACK_CHUNK):
            cells = [
                self.space.cell(permuted_index(j, size, self.seed))
                for j in range(chunk_start, min(size, chunk_start + FALLBACK_CHUNK))
            ]
            chunk = [self._proposal(index, cell) for cell in cells]
            used = taken({c.params_hash for c in chunk}) | local
            for candidate in chunk:
                if candidate.params_hash not in used:
                    return candidate
        return None

    @staticmethod
    def _proposal(index: int, params: dict) -> Proposal:
        return Proposal(index, params, params_hash(params))

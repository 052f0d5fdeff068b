"""Hyperband (synchronous, Polyaxon-like) and its asynchronous variant (ASHA).

References:
    Li, Jamieson, DeSalvo, Rostamizadeh and Talwalkar, "Hyperband: A Novel
    Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185), 2017.
    Li, Jamieson, Rostamizadeh, Gonina, Hardt, Recht and Talwalkar, "A System for
    Massively Parallel Hyperparameter Tuning", arXiv:1810.05934, 2018 (ASHA,
    Algorithm 2).

The algorithm keeps no state of its own. Each call to `Hyperband.propose` reads
every trial of the group (`RungTrial`) and answers what to run next: fresh
configurations at rung 0 and promotions of finished trials to the next rung.
The answer is a pure function of the constructor's arguments and the history.

Arithmetic is exact (`fractions.Fraction`): Polyaxon 0.6.1 computed the number of
brackets with floating-point logs and got (243, 3) and (1000, 10) wrong.
"""

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from app.algorithms.space import Space, params_hash, permuted_index

FINISHED_STATUSES = frozenset({"succeeded", "failed", "stopped"})
ACTIVE_STATUSES = frozenset({"pending", "running"})
EXPIRED_STATUS = "expired"
RESOURCE_TYPES = ("int", "float")


@dataclass(frozen=True)
class Rung:
    """One rung of a bracket: how many trials run it and with what resource."""

    bracket: int
    rung: int
    size: int
    resource: int | float


@dataclass(frozen=True)
class Bracket:
    """One bracket of Hyperband: `n` configurations started, successive halving on them."""

    s: int
    n: int
    rungs: tuple[Rung, ...]


@dataclass(frozen=True)
class RungTrial:
    """What the algorithm sees of one existing trial of the group."""

    id: int
    slot: int
    bracket: int
    rung: int
    status: str
    value: float | None
    params: dict[str, Any]
    resume_from: int | None


@dataclass(frozen=True)
class RungProposal:
    """One trial to create: a fresh configuration, or a promotion of a finished trial."""

    slot: int
    bracket: int
    rung: int
    resource: int | float
    params: dict[str, Any]
    params_hash: str
    resume_from: int | None


@dataclass
class RungBatch:
    """The answer of one `Hyperband.propose` call."""

    proposals: list[RungProposal]
    complete: bool


def _exact_eta(eta: Any) -> Fraction:
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
        raise ValueError(f"eta must be a number greater than 1, got {eta!r}")
    if isinstance(eta, numbers.Rational):
        value = Fraction(int(eta)) if isinstance(eta, numbers.Integral) else Fraction(eta)
    else:
        as_float = float(eta)
        if not math.isfinite(as_float):
            raise ValueError(f"eta must be a finite number greater than 1, got {eta!r}")
        # The shortest decimal that reads back as this float is what the user
        # wrote: 3.0 becomes 3 and 1.5 becomes 3/2 exactly, so integral and
        # short decimal etas both escape binary rounding error.
        value = Fraction(repr(as_float))
    if value <= 1:
        raise ValueError(f"eta must be greater than 1, got {eta!r}")
    return value


def _checked_max_iter(max_iter: Any) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Real):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if isinstance(max_iter, numbers.Integral):
        value = int(max_iter)
    else:
        as_float = float(max_iter)
        if not as_float.is_integer():
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        value = int(as_float)
    if value < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    return value


def _checked_resource_type(resource_type: Any) -> str:
    kind = resource_type.lower() if isinstance(resource_type, str) else resource_type
    if kind not in RESOURCE_TYPES:
        raise ValueError(f"resource_type must be 'int' or 'float', got {resource_type!r}")
    return kind


def _s_max(max_iter: int, eta: Fraction) -> int:
    # A float estimate may be one off either way ((243, 3) gives 4.999...), so it
    # only seeds the search; the exact comparisons decide.
    s = max(0, int(math.log(max_iter) / math.log(eta)))
    while s > 0 and eta**s > max_iter:
        s -= 1
    while eta ** (s + 1) <= max_iter:
        s += 1
    return s


def _cast(resource: Fraction, resource_type: str) -> int | float:
    # int() truncates toward zero, as Polyaxon does; resources are >= 1 here.
    return int(resource) if resource_type == "int" else float(resource)


def _plan(max_iter: int, eta: Fraction, resource_type: str) -> list[Bracket]:
    s_max = _s_max(max_iter, eta)
    powers = [eta**k for k in range(s_max + 1)]
    brackets = []
    for s in range(s_max, -1, -1):
        # B / max_iter is exactly s_max + 1, so n(s) needs no division by max_iter.
        n = math.ceil((s_max + 1) * powers[s] / (s + 1))
        rungs = tuple(
            Rung(
                bracket=s,
                rung=k,
                # Rung k keeps floor(n * eta**-(k-1) / eta) = floor(n / eta**k) of the
                # uncapped n(s), as Polyaxon does; k = 0 gives n itself.
                size=math.floor(n / powers[k]),
                resource=_cast(max_iter * powers[k] / powers[s], resource_type),
            )
            for k in range(s + 1)
        )
        brackets.append(Bracket(s=s, n=n, rungs=rungs))
    return brackets


def plan(max_iter: int, eta: float, resource_type: str = "float") -> list[Bracket]:
    """The brackets of canonical Hyperband, in run order (s = s_max first).

    With R = `max_iter`: s_max is the largest integer s with eta**s <= R; bracket s
    starts n(s) = ceil((s_max + 1) * eta**s / (s + 1)) configurations with resource
    R * eta**-s, and rung k (k = 0 .. s) runs floor(n(s) / eta**k) of them with
    resource R * eta**(k - s). No rung goes past R (Polyaxon 0.6.1 ran one extra
    at R * eta in the last bracket; canonical Hyperband does not).

    Reference: Li et al. 2017, "Hyperband", JMLR 18(185), Algorithm 1.

    Args:
        max_iter: R, the most resource one configuration may get; an integer >= 1.
        eta: The reduction factor, > 1. Integral and short decimal values are
            handled exactly.
        resource_type: "int" (resources truncated, as Polyaxon does) or "float".

    Returns:
        The s_max + 1 brackets, most configurations first.

    Raises:
        ValueError: `max_iter` < 1 or not an integer, `eta` <= 1, or an unknown
            `resource_type`.
    """
    return _plan(
        _checked_max_iter(max_iter), _exact_eta(eta), _checked_resource_type(resource_type)
    )


def _has_value(trial: RungTrial) -> bool:
    # NaN cannot be ordered, so it counts as a missing metric.
    return trial.value is not None and not math.isnan(trial.value)


@dataclass(frozen=True)
class _Step:
    """What one synchronous bracket can hand out right now."""

    kind: Literal["new", "promote", "wait", "done"]
    missing: int = 0
    rung: int = 0
    candidates: tuple[RungTrial, ...] = ()


_WAIT = _Step("wait")
_DONE = _Step("done")


@dataclass
class _History:
    """The group's live trials (expired ones dropped), indexed for the rules."""

    cells: dict[tuple[int, int], list[RungTrial]]
    promoted: set[int]  # ids some live trial resumes from
    drawn: int  # fresh configurations so far: live rung-0 trials
    active: bool  # any trial pending or running


class Hyperband:
    """Hyperband over a `Space`, synchronous (Polyaxon-like) or asynchronous (ASHA).

    Synchronous: the brackets of `plan` in order; rung k + 1 of a bracket is formed
    once every trial of rung k has finished, from its best trials. A bracket that
    waits on running trials lets the next bracket start, so workers stay busy.

    Asynchronous: one bracket with s = s_max, promoting a trial as soon as it is
    in the top 1/eta of the finished trials of its rung.

    References: Li et al. 2017, "Hyperband", JMLR 18(185); Li et al. 2018,
    "A System for Massively Parallel Hyperparameter Tuning" (ASHA), Algorithm 2.
    """

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        max_iter: int,
        eta: float,
        resource_name: str,
        resource_type: str = "float",
        maximize: bool = True,
        asynchronous: bool = False,
        n_configs: int | None = None,
    ) -> None:
        """Check the settings and lay out the brackets.

        Args:
            space: The search space; it must not define `resource_name`.
            seed: Seeds every fresh configuration (draw j is a function of seed, j).
            max_iter: R, the most resource a configuration may get.
            eta: The reduction factor, > 1.
            resource_name: The param that carries each trial's resource.
            resource_type: "int" or "float".
            maximize: True when a larger metric is better.
            asynchronous: ASHA instead of synchronous Hyperband.
            n_configs: ASHA only: the fresh configurations to draw (default: as many
                as the synchronous plan starts). Ignored by synchronous Hyperband,
                whose plan fixes its own counts.

        Raises:
            ValueError: A setting out of range, or `resource_name` empty or already
                a param of the space.
        """
        self._space = space
        self._seed = seed
        self._max_iter = _checked_max_iter(max_iter)
        self._eta = _exact_eta(eta)
        self._resource_type = _checked_resource_type(resource_type)
        if not isinstance(resource_name, str) or not resource_name:
            raise ValueError(f"resource_name must be a non-empty string, got {resource_name!r}")
        if resource_name in space.names():
            # The resource would silently overwrite a searched param.
            raise ValueError(f"resource_name {resource_name!r} is also a param of the matrix")
        self._resource_name = resource_name
        self._maximize = bool(maximize)
        self._asynchronous = bool(asynchronous)
        # A discrete space has no more distinct configurations than its size.
        self._cap: int | None = space.size if space.is_discrete else None

        sync_plan = _plan(self._max_iter, self._eta, self._resource_type)
        self._s_max = sync_plan[0].s
        if self._asynchronous:
            if n_configs is None:
                budget = sum(b.n for b in sync_plan)
            elif (
                isinstance(n_configs, bool)
                or not isinstance(n_configs, numbers.Integral)
                or n_configs < 1
            ):
                raise ValueError(f"n_configs must be an integer >= 1, got {n_configs!r}")
            else:
                budget = int(n_configs)
            self._n_configs = budget if self._cap is None else min(budget, self._cap)
            self._brackets = [self._asha_bracket(sync_plan[0])]
        else:
            self._n_configs = sum(self._capped(b.n) for b in sync_plan)
            self._brackets = sync_plan
        self._resources = {(r.bracket, r.rung): r.resource for b in self._brackets for r in b.rungs}

    def _asha_bracket(self, top: Bracket) -> Bracket:
        # Same resources as the synchronous bracket s_max. The sizes are nominal,
        # floor(n / eta**k): ASHA can exceed them a little, since a late trial that
        # beats an already promoted one is promoted too (promotions are never undone).
        rungs = tuple(
            Rung(r.bracket, r.rung, math.floor(self._n_configs / self._eta**r.rung), r.resource)
            for r in top.rungs
        )
        return Bracket(s=top.s, n=self._n_configs, rungs=rungs)

    def _capped(self, n: int) -> int:
        return n if self._cap is None else min(n, self._cap)

    @property
    def brackets(self) -> list[Bracket]:
        """The synchronous plan, or for ASHA its one bracket (rung sizes nominal)."""
        return list(self._brackets)

    @property
    def planned(self) -> int | None:
        """Synchronous: the trials the group runs when every trial reports its metric.

        206 for (81, 3) over a continuous space; fewer when an all-discrete space
        caps the fresh configurations of a bracket. None for ASHA, whose count
        depends on the order trials finish in.
        """
        if self._asynchronous:
            return None
        total = 0
        for bracket in self._brackets:
            size = self._capped(bracket.n)
            for rung in bracket.rungs:
                size = min(size, rung.size)
                total += size
        return total

    @property
    def n_configs(self) -> int:
        """The fresh configurations the group draws at most (capped by a discrete space)."""
        return self._n_configs

    def propose(self, history: Sequence[RungTrial], count: int, next_slot: int) -> RungBatch:
        """Up to `count` trials to create next, given every trial of the group.

        Reference: Li et al. 2017 (synchronous brackets); Li et al. 2018, ASHA
        Algorithm 2 (asynchronous promotions).

        Args:
            history: Every trial of the group, in any order. Expired trials are
                ignored: the service re-offers each as a trial with the same slot.
            count: The most proposals wanted (0 only asks whether the group is complete).
            next_slot: The slot of the first proposal; the i-th gets `next_slot + i`.

        Returns:
            The proposals, and whether nothing more will ever be proposed.

        Raises:
            ValueError: A negative count, or a trial whose status, bracket or rung
                this search cannot have produced, or two live trials on one slot.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        seen = self._index(history)
        if self._asynchronous:
            return self._propose_asha(seen, count, next_slot)
        return self._propose_sync(seen, count, next_slot)

    # -- reading the history ------------------------------------------------

    def _index(self, history: Iterable[RungTrial]) -> _History:
        cells: dict[tuple[int, int], list[RungTrial]] = {}
        promoted: set[int] = set()
        slots: set[int] = set()
        active = False
        for trial in history:
            if trial.status == EXPIRED_STATUS:
                continue
            if trial.status not in FINISHED_STATUSES and trial.status not in ACTIVE_STATUSES:
                raise ValueError(f"trial {trial.id} has an unknown status {trial.status!r}")
            if (trial.bracket, trial.rung) not in self._resources:
                raise ValueError(
                    f"trial {trial.id} is at bracket {trial.bracket} rung {trial.rung},"
                    " which this search does not have"
                )
            if trial.slot in slots:
                raise ValueError(f"two live trials share slot {trial.slot}")
            slots.add(trial.slot)
            cells.setdefault((trial.bracket, trial.rung), []).append(trial)
            if trial.resume_from is not None:
                promoted.add(trial.resume_from)
            active = active or trial.status in ACTIVE_STATUSES
        drawn = sum(len(trials) for (_, rung), trials in cells.items() if rung == 0)
        return _History(cells=cells, promoted=promoted, drawn=drawn, active=active)

    def _ranked(self, trials: Iterable[RungTrial]) -> list[RungTrial]:
        """Best first; equal metrics by smaller id; trials without a metric last."""
        sign = -1.0 if self._maximize else 1.0
        scored = sorted(
            (t for t in trials if _has_value(t)),
            key=lambda t: (sign * float(t.value), t.id),  # type: ignore[arg-type]
        )
        unscored = sorted((t for t in trials if not _has_value(t)), key=lambda t: t.id)
        return scored + unscored

    # -- making proposals ---------------------------------------------------

    def _draw(self, j: int) -> dict[str, Any]:
        size = self._space.size
        if self._space.is_discrete and not self._space.is_weighted and size:
            # A seeded permutation of the grid: no cell comes twice before every
            # cell has come once, and draw j stays a function of (seed, j).
            return self._space.cell(permuted_index(j % size, size, self._seed))
        return self._space.sample(self._seed, j)

    def _fresh(self, slot: int, bracket: int, j: int) -> RungProposal:
        resource = self._resources[(bracket, 0)]
        params = dict(self._draw(j))
        params[self._resource_name] = resource
        return RungProposal(slot, bracket, 0, resource, params, params_hash(params), None)

    def _promotion(self, slot: int, trial: RungTrial, rung: int) -> RungProposal:
        resource = self._resources[(trial.bracket, rung)]
        params = dict(trial.params)
        params[self._resource_name] = resource
        return RungProposal(
            slot, trial.bracket, rung, resource, params, params_hash(params), trial.id
        )

    # -- synchronous Hyperband ----------------------------------------------

    def _sync_step(self, bracket: Bracket, seen: _History) -> _Step:
        s = bracket.s
        expected = self._capped(bracket.n)
        for k in range(s + 1):
            trials = seen.cells.get((s, k), [])
            missing = expected - len(trials)
            if missing > 0:
                if k == 0:
                    return _Step("new", missing=missing)
                below = seen.cells.get((s, k - 1), [])
                candidates = [
                    t for t in self._ranked(below) if _has_value(t) and t.id not in seen.promoted
                ]
                if candidates:
                    return _Step("promote", rung=k, candidates=tuple(candidates[:missing]))
                # Nothing is left to promote (the history disagrees with the plan):
                # take the rung as it stands rather than wait forever.
            if any(t.status in ACTIVE_STATUSES for t in trials):
                return _WAIT
            if k == s:
                return _DONE
            # Trials without a metric can never be promoted, so they shrink the rung.
            with_value = sum(1 for t in trials if _has_value(t))
            expected = min(bracket.rungs[k + 1].size, with_value)
            if expected == 0:
                return _DONE
        return _DONE

    def _propose_sync(self, seen: _History, count: int, next_slot: int) -> RungBatch:
        proposals: list[RungProposal] = []
        j = seen.drawn
        complete = True
        for bracket in self._brackets:
            step = self._sync_step(bracket, seen)
            if step.kind != "done":
                complete = False
            room = count - len(proposals)
            # A bracket waiting on running trials gives nothing; the loop moves on to
            # the next bracket so the free workers start its rung 0 at once.
            if step.kind == "new":
                for _ in range(min(step.missing, room)):
                    proposals.append(self._fresh(next_slot + len(proposals), bracket.s, j))
                    j += 1
            elif step.kind == "promote":
                for trial in step.candidates[:room]:
                    proposals.append(self._promotion(next_slot + len(proposals), trial, step.rung))
        return RungBatch(proposals=proposals, complete=complete)

    # -- asynchronous successive halving (ASHA) -----------------------------

    def _asha_candidate(self, seen: _History, promoted: set[int]) -> tuple[RungTrial, int] | None:
        # Top rung first: finishing a configuration already far along is worth more
        # than starting another at the bottom (ASHA, Algorithm 2, get_job).
        for k in range(self._s_max - 1, -1, -1):
            finished = [
                t for t in seen.cells.get((self._s_max, k), []) if t.status in FINISHED_STATUSES
            ]
            quota = math.floor(len(finished) / self._eta)
            for trial in self._ranked(finished)[:quota]:
                if _has_value(trial) and trial.id not in promoted:
                    return trial, k + 1
        return None

    def _propose_asha(self, seen: _History, count: int, next_slot: int) -> RungBatch:
        complete = (
            seen.drawn >= self._n_configs
            and not seen.active
            and self._asha_candidate(seen, seen.promoted) is None
        )
        proposals: list[RungProposal] = []
        promoted = set(seen.promoted)
        j = seen.drawn
        while len(proposals) < count:
            slot = next_slot + len(proposals)
            found = self._asha_candidate(seen, promoted)
            if found is not None:
                trial, rung = found
                promoted.add(trial.id)
                proposals.append(self._promotion(slot, trial, rung))
            elif j < self._n_configs:
                proposals.append(self._fresh(slot, self._s_max, j))
                j += 1
            else:
                break
        return RungBatch(proposals=proposals, complete=complete)

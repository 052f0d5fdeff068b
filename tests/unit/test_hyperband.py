"""Hyperband: bracket plans, the synchronous rung rules, ASHA promotions, determinism."""

import math
import random
from dataclasses import replace
from typing import Any

import pytest

from app.algorithms.hyperband import (
    Hyperband,
    RungBatch,
    RungProposal,
    RungTrial,
    plan,
)
from app.algorithms.space import Space, permuted_index

CONTINUOUS = Space.from_matrix(
    {"lr": {"uniform": {"low": 0.0, "high": 1.0}}, "wd": {"uniform": {"low": 0.0, "high": 1.0}}}
)
RESOURCE = "epochs"


def make(max_iter: int = 81, eta: float = 3, **kwargs: Any) -> Hyperband:
    options: dict[str, Any] = {"seed": 7, "resource_name": RESOURCE}
    options.update(kwargs)
    space = options.pop("space", CONTINUOUS)
    return Hyperband(space, max_iter=max_iter, eta=eta, **options)


def score(params: dict[str, Any]) -> float:
    """A deterministic metric: best near lr=0.3, wd=0.6, improving with the resource."""
    base = -((params["lr"] - 0.3) ** 2) - 0.5 * (params["wd"] - 0.6) ** 2
    return base + 0.001 * math.log(params[RESOURCE])


def trial(
    id: int,
    *,
    bracket: int,
    rung: int = 0,
    status: str = "succeeded",
    value: float | None = 0.0,
    slot: int | None = None,
    params: dict[str, Any] | None = None,
    resume_from: int | None = None,
) -> RungTrial:
    return RungTrial(
        id=id,
        slot=id if slot is None else slot,
        bracket=bracket,
        rung=rung,
        status=status,
        value=value,
        params=params if params is not None else {"lr": id / 1000, "wd": 0.5, RESOURCE: 1.0},
        resume_from=resume_from,
    )


def ranked_ids(trials: list[RungTrial], maximize: bool = True) -> list[int]:
    """An independent oracle of the ranking rule."""
    sign = -1 if maximize else 1
    scored = sorted(
        (t for t in trials if t.value is not None), key=lambda t: (sign * t.value, t.id)
    )
    return [t.id for t in scored] + sorted(t.id for t in trials if t.value is None)


# -- plans -------------------------------------------------------------------

TABLES = {
    (81, 3, "float"): [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ],
    (27, 3, "float"): [
        [(27, 1), (9, 3), (3, 9), (1, 27)],
        [(12, 3), (4, 9), (1, 27)],
        [(6, 9), (2, 27)],
        [(4, 27)],
    ],
    (10, 3, "int"): [[(9, 1), (3, 3), (1, 10)], [(5, 3), (1, 10)], [(3, 10)]],
    (9, 3, "float"): [[(9, 1), (3, 3), (1, 9)], [(5, 3), (1, 9)], [(3, 9)]],
}
TOTALS = {
    (81, 3, "float"): (143, 206),
    (27, 3, "float"): (49, 69),
    (10, 3, "int"): (17, 22),
    (9, 3, "float"): (17, 22),
}


@pytest.mark.parametrize("key", list(TABLES))
def test_plan_tables_rung_by_rung(key: tuple[int, int, str]) -> None:
    max_iter, eta, resource_type = key
    brackets = plan(max_iter, eta, resource_type)
    got = [[(r.size, r.resource) for r in b.rungs] for b in brackets]
    assert got == TABLES[key]
    s_max = len(TABLES[key]) - 1
    assert [b.s for b in brackets] == list(range(s_max, -1, -1))
    for b in brackets:
        assert b.n == b.rungs[0].size
        assert [r.rung for r in b.rungs] == list(range(b.s + 1))
        assert {r.bracket for r in b.rungs} == {b.s}
        assert b.rungs[-1].resource == max_iter  # never past max_iter
        wanted_type = int if resource_type == "int" else float
        assert all(type(r.resource) is wanted_type for r in b.rungs)
    new, runs = TOTALS[key]
    assert sum(b.n for b in brackets) == new
    assert sum(r.size for b in brackets for r in b.rungs) == runs


def test_plan_243_3_has_six_brackets() -> None:
    brackets = plan(243, 3)
    assert [b.s for b in brackets] == [5, 4, 3, 2, 1, 0]
    assert [(r.size, r.resource) for r in brackets[0].rungs] == [
        (243, 1.0),
        (81, 3.0),
        (27, 9.0),
        (9, 27.0),
        (3, 81.0),
        (1, 243.0),
    ]
    # n(s) = ceil(6 * 3**s / (s + 1)), with exact arithmetic.
    assert [b.n for b in brackets] == [243, 98, 41, 18, 9, 6]
    assert all(r.resource <= 243 for b in brackets for r in b.rungs)


def test_plan_float_resources_have_no_rounding_noise() -> None:
    # 9 * 3**-2 * 3**2 in floats may come out as 9.000000000000002.
    resources = {r.resource for b in plan(9, 3.0) for r in b.rungs}
    assert resources == {1.0, 3.0, 9.0}


@pytest.mark.parametrize(
    ("max_iter", "eta", "s_max"),
    [
        (243, 3, 5),
        (1000, 10, 3),
        (1000, 10.0, 3),
        (81, 3, 4),
        (80, 3, 3),
        (1, 3, 0),
        (2, 3, 0),
        (3, 3, 1),
        (125, 5, 3),
        (1024, 2, 10),
        (1023, 2, 9),
        (100, 2.5, 5),
        # Float logs round these up to the next integer.
        (10**16 - 1, 10, 15),
        (2**60 - 1, 2, 59),
    ],
)
def test_s_max_edge_cases(max_iter: int, eta: float, s_max: int) -> None:
    assert plan(max_iter, eta)[0].s == s_max
    assert len(plan(max_iter, eta)) == s_max + 1


def test_s_max_matches_integer_search() -> None:
    for eta in range(2, 11):
        # Around every power of eta up to 10**5, where float logs go wrong.
        powers = [eta**e for e in range(int(5 / math.log10(eta)) + 1)]
        for max_iter in sorted({max(1, p + d) for p in powers for d in (-1, 0, 1)}):
            expected = 0
            while eta ** (expected + 1) <= max_iter:
                expected += 1
            assert plan(max_iter, eta)[0].s == expected, (max_iter, eta)


def test_max_iter_one_is_a_single_run() -> None:
    (only,) = plan(1, 3, "int")
    assert (only.s, only.n, [(r.size, r.resource) for r in only.rungs]) == (0, 1, [(1, 1)])


@pytest.mark.parametrize("eta", [1, 1.0, 0.5, 0, -2, float("nan"), float("inf")])
def test_eta_at_most_one_is_rejected(eta: float) -> None:
    with pytest.raises(ValueError, match="eta"):
        plan(81, eta)
    with pytest.raises(ValueError, match="eta"):
        make(eta=eta)


@pytest.mark.parametrize("max_iter", [0, -3, 2.5])
def test_bad_max_iter_is_rejected(max_iter: float) -> None:
    with pytest.raises(ValueError, match="max_iter"):
        plan(max_iter, 3)  # type: ignore[arg-type]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="resource_type"):
        plan(81, 3, "double")
    with pytest.raises(ValueError, match="resource_name"):
        make(resource_name="lr")
    with pytest.raises(ValueError, match="n_configs"):
        make(asynchronous=True, n_configs=0)
    with pytest.raises(ValueError, match="count"):
        make().propose([], -1, 0)


def test_planned_and_brackets() -> None:
    sync = make()
    assert sync.planned == 206
    assert sync.n_configs == 143
    assert [b.s for b in sync.brackets] == [4, 3, 2, 1, 0]
    asha = make(asynchronous=True)
    assert asha.planned is None
    assert asha.n_configs == 143
    (bracket,) = asha.brackets
    assert bracket.s == 4 and bracket.n == 143
    assert [(r.rung, r.size, r.resource) for r in bracket.rungs] == [
        (0, 143, 1.0),
        (1, 47, 3.0),
        (2, 15, 9.0),
        (3, 5, 27.0),
        (4, 1, 81.0),
    ]
    assert make(asynchronous=True, n_configs=20).n_configs == 20


def test_unknown_status_and_foreign_rung_are_rejected() -> None:
    hb = make(9, 3)
    with pytest.raises(ValueError, match="status"):
        hb.propose([trial(1, bracket=2, status="exploded")], 1, 2)
    with pytest.raises(ValueError, match="bracket"):
        hb.propose([trial(1, bracket=7)], 1, 2)
    with pytest.raises(ValueError, match="rung"):
        hb.propose([trial(1, bracket=1, rung=2)], 1, 2)
    with pytest.raises(ValueError, match="slot"):
        hb.propose([trial(1, bracket=2, slot=0), trial(2, bracket=2, slot=0)], 1, 2)


# -- a fake service ----------------------------------------------------------


class Driver:
    """Plays the service: records proposals as running trials and finishes them."""

    def __init__(self, hb: Hyperband, metric: Any = score) -> None:
        self.hb = hb
        self.metric = metric
        self.trials: dict[int, RungTrial] = {}
        self.next_slot = 100  # not 0, so slots and ids differ
        self.next_id = 1
        self.batches: list[RungBatch] = []

    @property
    def history(self) -> list[RungTrial]:
        return list(self.trials.values())

    def running(self) -> list[RungTrial]:
        return [t for t in self.trials.values() if t.status == "running"]

    def ask(self, count: int) -> RungBatch:
        batch = self.hb.propose(self.history, count, self.next_slot)
        assert len(batch.proposals) <= count
        self.check(batch.proposals)
        for p in batch.proposals:
            self.trials[self.next_id] = RungTrial(
                id=self.next_id,
                slot=p.slot,
                bracket=p.bracket,
                rung=p.rung,
                status="running",
                value=None,
                params=p.params,
                resume_from=p.resume_from,
            )
            self.next_id += 1
        self.next_slot += len(batch.proposals)
        self.batches.append(batch)
        return batch

    def check(self, proposals: list[RungProposal]) -> None:
        """Rules every proposal must obey, checked against the history it was made from."""
        assert [p.slot for p in proposals] == list(
            range(self.next_slot, self.next_slot + len(proposals))
        )
        already = {t.resume_from for t in self.trials.values() if t.resume_from is not None}
        in_batch = [p.resume_from for p in proposals if p.resume_from is not None]
        assert len(in_batch) == len(set(in_batch)), "a trial promoted twice in one batch"
        for p in proposals:
            assert p.params[RESOURCE] == p.resource
            if p.resume_from is None:
                assert p.rung == 0
                continue
            assert p.resume_from not in already, "a trial promoted twice"
            source = self.trials[p.resume_from]
            assert source.status == "succeeded" and source.value is not None
            assert (source.bracket, source.rung + 1) == (p.bracket, p.rung)
            assert {k: v for k, v in p.params.items() if k != RESOURCE} == {
                k: v for k, v in source.params.items() if k != RESOURCE
            }

    def finish(self, t: RungTrial, status: str = "succeeded") -> None:
        value = self.metric(t.params) if status == "succeeded" else None
        self.trials[t.id] = replace(t, status=status, value=value)

    def per_rung(self) -> dict[tuple[int, int], int]:
        out: dict[tuple[int, int], int] = {}
        for t in self.trials.values():
            out[(t.bracket, t.rung)] = out.get((t.bracket, t.rung), 0) + 1
        return out


def expected_sizes(hb: Hyperband, space: Space) -> dict[tuple[int, int], int]:
    """Rung sizes of a synchronous run where every trial reports, with the discrete cap."""
    cap = space.size
    out = {}
    for b in hb.brackets:
        size = b.n if cap is None else min(b.n, cap)
        for r in b.rungs:
            size = min(size, r.size)
            out[(r.bracket, r.rung)] = size
    return out


def run_sync(hb: Hyperband, workers: int, space: Space = CONTINUOUS) -> Driver:
    """Keep `workers` trials running; finish them in a shuffled order; check the rung rules."""
    driver = Driver(hb)
    rng = random.Random(workers)
    sizes = expected_sizes(hb, space)
    for _ in range(10_000):
        before = {t.id: t for t in driver.trials.values()}
        batch = driver.ask(workers - len(driver.running()))
        for p in batch.proposals:
            if p.resume_from is None:
                continue
            below = [t for t in before.values() if (t.bracket, t.rung) == (p.bracket, p.rung - 1)]
            # Promotions only from a rung that is whole and finished.
            assert len(below) == sizes[(p.bracket, p.rung - 1)]
            assert all(t.status == "succeeded" for t in below)
            keep = sizes[(p.bracket, p.rung)]
            assert p.resume_from in ranked_ids(below)[:keep], "promoted a trial not in the top"
        running = driver.running()
        if batch.complete:
            assert not batch.proposals and not running
            return driver
        assert batch.proposals or running, "stuck: nothing running and nothing proposed"
        if running:
            driver.finish(rng.choice(running))
    raise AssertionError("the group never completed")


# -- synchronous Hyperband ---------------------------------------------------


@pytest.mark.parametrize("workers", [1, 4, 17])
def test_sync_group_runs_the_whole_plan(workers: int) -> None:
    hb = make()
    driver = run_sync(hb, workers)
    expected = {(r.bracket, r.rung): r.size for b in hb.brackets for r in b.rungs}
    assert driver.per_rung() == expected
    assert len(driver.trials) == 206
    assert sum(1 for t in driver.trials.values() if t.rung == 0) == 143
    assert all(not b.complete for b in driver.batches[:-1])
    assert driver.batches[-1].complete
    # Once complete, it stays so and proposes nothing.
    again = hb.propose(driver.history, 50, driver.next_slot)
    assert again.proposals == [] and again.complete


def test_sync_new_configurations_are_draws_of_the_seed() -> None:
    hb = make()
    batch = hb.propose([], 5, 0)
    for j, p in enumerate(batch.proposals):
        assert p.params == {**CONTINUOUS.sample(7, j), RESOURCE: 1.0}
        assert (p.bracket, p.rung, p.resume_from) == (4, 0, None)


def test_sync_large_count_starts_every_bracket() -> None:
    batch = make().propose([], 1000, 0)
    counts: dict[int, int] = {}
    for p in batch.proposals:
        assert p.rung == 0 and p.resume_from is None
        counts[p.bracket] = counts.get(p.bracket, 0) + 1
    assert counts == {4: 81, 3: 34, 2: 15, 1: 8, 0: 5}
    # Brackets in plan order, each at its own base resource.
    assert [p.bracket for p in batch.proposals] == sorted(
        (p.bracket for p in batch.proposals), reverse=True
    )
    assert {p.bracket: p.resource for p in batch.proposals} == {
        4: 1.0,
        3: 3.0,
        2: 9.0,
        1: 27.0,
        0: 81.0,
    }
    assert not batch.complete


def test_sync_next_bracket_starts_while_the_previous_waits() -> None:
    hb = make()
    driver = Driver(hb)
    driver.ask(81)
    # All but one of bracket 4's rung 0 finish: the rung is not whole yet.
    *done, last = driver.running()
    for t in done:
        driver.finish(t)
    batch = driver.ask(6)
    assert [(p.bracket, p.rung) for p in batch.proposals] == [(3, 0)] * 6
    driver.finish(last)
    batch = driver.ask(30)
    # Bracket 4 comes first again: its 27 promotions, then bracket 3 resumes.
    assert [(p.bracket, p.rung) for p in batch.proposals] == [(4, 1)] * 27 + [(3, 0)] * 3
    rung0 = [t for t in driver.trials.values() if (t.bracket, t.rung) == (4, 0)]
    promoted = {p.resume_from for p in batch.proposals if p.resume_from is not None}
    assert promoted == set(ranked_ids(rung0)[:27])


def test_sync_promotions_split_over_calls_are_not_repeated() -> None:
    hb = make(9, 3)
    driver = Driver(hb)
    driver.ask(9)
    for t in driver.running():
        driver.finish(t)
    first = driver.ask(2)
    second = driver.ask(2)
    assert [p.rung for p in first.proposals] == [1, 1]
    # One promotion left in bracket 2, then bracket 1 starts.
    assert [(p.bracket, p.rung) for p in second.proposals] == [(2, 1), (1, 0)]
    rung0 = [t for t in driver.trials.values() if (t.bracket, t.rung) == (2, 0)]
    ids = [p.resume_from for p in first.proposals + second.proposals if p.rung == 1]
    assert ids == ranked_ids(rung0)[:3]


def test_sync_ties_go_to_the_smaller_id() -> None:
    hb = make(9, 3)
    # Ids in a different order than slots, every value equal.
    history = [
        trial(i, bracket=2, slot=50 - i, value=0.5) for i in (12, 3, 40, 7, 25, 9, 31, 18, 5)
    ]
    batch = hb.propose(history, 3, 60)
    assert [p.resume_from for p in batch.proposals] == [3, 5, 7]
    assert [p.slot for p in batch.proposals] == [60, 61, 62]
    assert all((p.bracket, p.rung, p.resource) == (2, 1, 3.0) for p in batch.proposals)


def test_sync_minimize_ranks_ascending() -> None:
    hb = make(9, 3, maximize=False)
    values = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]
    history = [trial(i + 1, bracket=2, value=v) for i, v in enumerate(values)]
    batch = hb.propose(history, 3, 100)
    assert [p.resume_from for p in batch.proposals] == [2, 6, 4]


def test_sync_missing_metrics_rank_last_and_are_never_promoted() -> None:
    hb = make(9, 3)
    history = [
        trial(1, bracket=2, status="failed", value=None),
        trial(2, bracket=2, value=0.2),
        trial(3, bracket=2, status="stopped", value=None),
        trial(4, bracket=2, value=None),  # succeeded but never reported
        trial(5, bracket=2, status="failed", value=None),
        trial(6, bracket=2, value=0.1),
        trial(7, bracket=2, status="failed", value=None),
        trial(8, bracket=2, status="failed", value=None),
        trial(9, bracket=2, status="stopped", value=None),
    ]
    batch = hb.propose(history, 3, 100)
    # keep is 3 but only two have a metric: rung 1 has two trials.
    assert [(p.rung, p.resume_from) for p in batch.proposals] == [(1, 2), (1, 6), (0, None)]
    assert batch.proposals[2].bracket == 1


def test_sync_bracket_without_any_metric_finishes() -> None:
    hb = make(9, 3)
    history = [trial(i, bracket=2, status="failed", value=None) for i in range(1, 10)]
    history += [trial(10 + i, bracket=1, rung=0, status="failed", value=None) for i in range(5)]
    history += [trial(20 + i, bracket=0, rung=0, value=0.5) for i in range(3)]
    batch = hb.propose(history, 10, 100)
    assert batch.proposals == []
    assert batch.complete
    # One running trial is enough to keep the group open.
    history[-1] = replace(history[-1], status="running", value=None)
    assert not hb.propose(history, 10, 100).complete


def test_sync_expired_trials_are_ignored() -> None:
    hb = make(9, 3)
    history = [trial(i, bracket=2, slot=i, value=0.1 * i) for i in range(1, 9)]
    expired = trial(9, bracket=2, slot=9, status="expired", value=100.0)
    replacement = trial(10, bracket=2, slot=9, status="running", value=None)
    history += [expired, replacement]
    batch = hb.propose(history, 1, 11)
    # Rung 0 still waits on the replacement; bracket 1 starts with the 10th draw
    # (j = 9: the expired trial is not a draw of its own).
    (p,) = batch.proposals
    assert (p.bracket, p.rung, p.resume_from) == (1, 0, None)
    assert p.params == {**CONTINUOUS.sample(7, 9), RESOURCE: 3.0}
    history[-1] = replace(replacement, status="succeeded", value=5.0)
    batch = hb.propose(history, 3, 11)
    assert [q.resume_from for q in batch.proposals] == [10, 8, 7]
    # With the expired trial alone (replacement not there yet), its slot is missing.
    alone = [t for t in history if t.id != 10]
    batch = hb.propose(alone, 1, 11)
    assert [(q.bracket, q.rung) for q in batch.proposals] == [(2, 0)]


def test_sync_expired_promotion_does_not_block_a_new_one() -> None:
    hb = make(9, 3)
    history = [trial(i, bracket=2, value=0.1 * i) for i in range(1, 10)]
    # Trial 9 was promoted, but that run expired with no replacement yet.
    history.append(trial(20, bracket=2, rung=1, status="expired", value=None, resume_from=9))
    batch = hb.propose(history, 3, 30)
    assert [p.resume_from for p in batch.proposals] == [9, 8, 7]


def test_sync_discrete_space_is_capped_and_drawn_without_repeats() -> None:
    space = Space.from_matrix({"lr": {"values": [0.1, 0.2, 0.3]}, "wd": {"values": [0.0, 1.0]}})
    hb = make(9, 3, space=space)
    assert hb.n_configs == 6 + 5 + 3
    assert hb.planned == (6 + 3 + 1) + (5 + 1) + 3
    batch = hb.propose([], 100, 0)
    assert [p.bracket for p in batch.proposals] == [2] * 6 + [1] * 5 + [0] * 3
    draws = [(p.params["lr"], p.params["wd"]) for p in batch.proposals]
    assert len(set(draws[:6])) == 6  # the whole space before any repeat
    for j, p in enumerate(batch.proposals):
        cell = space.cell(permuted_index(j % 6, 6, 7))
        assert p.params == {**cell, RESOURCE: p.resource}
    driver = run_sync(make(9, 3, space=space, seed=3), workers=3, space=space)
    assert len(driver.trials) == hb.planned


def test_sync_weighted_space_samples_by_seed() -> None:
    weights = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]]
    space = Space.from_matrix({"a": {"pvalues": weights}, "b": {"pvalues": weights}})
    batch = make(9, 3, space=space).propose([], 8, 0)
    assert [p.params for p in batch.proposals] == [
        {**space.sample(7, j), RESOURCE: 1.0} for j in range(8)
    ]


def test_sync_int_resource_in_params() -> None:
    hb = make(10, 3, resource_type="int")
    driver = run_sync(hb, workers=2)
    resources = {(t.bracket, t.rung): t.params[RESOURCE] for t in driver.trials.values()}
    assert resources == {
        (2, 0): 1,
        (2, 1): 3,
        (2, 2): 10,
        (1, 0): 3,
        (1, 1): 10,
        (0, 0): 10,
    }
    assert all(type(v) is int for v in resources.values())


# -- ASHA --------------------------------------------------------------------


def asha_history(values: list[float | None], running: int = 0) -> list[RungTrial]:
    out = [
        trial(i + 1, bracket=4, value=v, status="succeeded" if v is not None else "failed")
        for i, v in enumerate(values)
    ]
    start = len(out) + 1
    out += [trial(start + i, bracket=4, status="running", value=None) for i in range(running)]
    return out


def test_asha_promotes_the_best_of_three_at_once() -> None:
    hb = make(asynchronous=True)
    history = asha_history([0.2, 0.9, 0.5], running=4)
    batch = hb.propose(history, 1, 50)
    (p,) = batch.proposals
    assert (p.bracket, p.rung, p.resource, p.resume_from, p.slot) == (4, 1, 3.0, 2, 50)
    assert p.params[RESOURCE] == 3.0
    # Two finished are not enough for eta 3: a fresh configuration instead.
    batch = hb.propose(asha_history([0.2, 0.9], running=4), 1, 50)
    assert [(q.rung, q.resume_from) for q in batch.proposals] == [(0, None)]
    assert batch.proposals[0].params == {**CONTINUOUS.sample(7, 6), RESOURCE: 1.0}


def test_asha_nine_finished_promote_the_top_three() -> None:
    hb = make(asynchronous=True)
    values = [0.4, 0.8, 0.1, 0.95, 0.3, 0.7, 0.2, 0.6, 0.5]
    batch = hb.propose(asha_history(values), 4, 0)
    assert [(p.rung, p.resume_from) for p in batch.proposals] == [
        (1, 4),
        (1, 2),
        (1, 6),
        (0, None),
    ]


def test_asha_never_promotes_twice() -> None:
    hb = make(asynchronous=True)
    history = asha_history([0.2, 0.9, 0.5])
    history.append(trial(10, bracket=4, rung=1, status="running", value=None, resume_from=2))
    batch = hb.propose(history, 1, 50)
    assert [(p.rung, p.resume_from) for p in batch.proposals] == [(0, None)]


def test_asha_failed_trials_are_never_promoted() -> None:
    hb = make(asynchronous=True)
    # Six finished: quota 2, but only one has a metric.
    history = asha_history([None, None, 0.3, None, None, None])
    batch = hb.propose(history, 2, 50)
    assert [(p.rung, p.resume_from) for p in batch.proposals] == [(1, 3), (0, None)]
    assert hb.propose(asha_history([None, None, None]), 1, 50).proposals[0].rung == 0


def test_asha_prefers_the_highest_rung() -> None:
    hb = make(asynchronous=True)
    history = asha_history([0.1 * i for i in range(1, 13)])
    history += [
        trial(20 + i, bracket=4, rung=1, value=v, resume_from=12 - i)
        for i, v in enumerate([0.3, 0.1, 0.2])
    ]
    batch = hb.propose(history, 3, 50)
    # Rung 1 has 3 finished: its best (trial 20) goes to rung 2 before rung 0's
    # fourth (12 finished: quota 4, three of them promoted already).
    assert [(p.rung, p.resume_from) for p in batch.proposals] == [(2, 20), (1, 9), (0, None)]
    assert batch.proposals[0].resource == 9.0


def test_asha_budget_and_completion() -> None:
    hb = make(asynchronous=True, n_configs=10)
    driver = Driver(hb)
    rng = random.Random(1)
    for _ in range(1000):
        batch = driver.ask(3 - len(driver.running()))
        if batch.complete:
            break
        running = driver.running()
        assert batch.proposals or running
        if running:
            driver.finish(rng.choice(running))
    else:
        raise AssertionError("ASHA never completed")
    assert driver.per_rung()[(4, 0)] == 10
    assert not driver.running()
    assert hb.propose(driver.history, 5, driver.next_slot).proposals == []


def test_asha_four_workers_never_idle() -> None:
    hb = make(asynchronous=True)
    driver = Driver(hb)
    rng = random.Random(4)
    for _ in range(5000):
        free = 4 - len(driver.running())
        drawn = sum(1 for t in driver.trials.values() if t.rung == 0)
        before = driver.history
        batch = driver.ask(free)
        if drawn < hb.n_configs:
            # While the budget is not spent, every free worker gets a trial.
            assert len(batch.proposals) == free
        # Each promotion is, when made, in the top 1/eta of its rung's finished trials.
        for p in batch.proposals:
            if p.resume_from is not None:
                finished = [t for t in before if t.rung == p.rung - 1 and t.status == "succeeded"]
                assert p.resume_from in ranked_ids(finished)[: len(finished) // 3]
        if batch.complete:
            break
        running = driver.running()
        if not running:
            raise AssertionError("stuck: nothing running, not complete")
        driver.finish(rng.choice(running))
    else:
        raise AssertionError("ASHA never completed")
    counts = driver.per_rung()
    assert counts[(4, 0)] == 143
    # Rungs thin out by about eta each (ASHA may promote a little more than 1/eta).
    assert [counts.get((4, k), 0) for k in range(5)] == sorted(
        (counts.get((4, k), 0) for k in range(5)), reverse=True
    )
    assert counts.get((4, 4), 0) >= 1  # something reached max_iter


# -- determinism -------------------------------------------------------------


def test_same_inputs_same_outputs() -> None:
    for asynchronous in (False, True):
        driver = Driver(make(asynchronous=asynchronous))
        driver.ask(20)
        for t in driver.running()[:15]:
            driver.finish(t)
        history = driver.history
        one = make(asynchronous=asynchronous).propose(history, 12, 500)
        two = make(asynchronous=asynchronous).propose(list(reversed(history)), 12, 500)
        assert one == two
        assert one.proposals
        other = make(asynchronous=asynchronous, seed=8).propose(history, 12, 500)
        assert [p.params for p in other.proposals] != [p.params for p in one.proposals]

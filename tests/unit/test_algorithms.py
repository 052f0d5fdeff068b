"""Grid order, random determinism and uniqueness, and every matrix kind's values."""

import math
from collections import Counter

import numpy as np
import pytest

from app.algorithms import build_searcher
from app.algorithms.grid import GridSearch
from app.algorithms.random import RandomSearch
from app.algorithms.space import Param, Space, params_hash, permuted_index


def no_taken(hashes: object) -> set[str]:
    return set()


class FakeGroup:
    """What the service's `taken` lookup does, over proposals accepted so far."""

    def __init__(self) -> None:
        self.hashes: set[str] = set()

    def taken(self, hashes: object) -> set[str]:
        return self.hashes & set(hashes)  # type: ignore[arg-type]

    def run(self, searcher: RandomSearch, batch: int = 7) -> list[dict]:
        out: list[dict] = []
        while len(out) < searcher.planned:
            got = searcher.propose(len(out), batch, self.taken)
            self.hashes |= {p.params_hash for p in got.proposals}
            out += [p.params for p in got.proposals]
            if got.exhausted or not got.proposals:
                break
        return out


def test_grid_is_the_ordered_product_first_key_slowest() -> None:
    space = Space.from_matrix(
        {"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}, "c": {"values": [True, False]}}
    )
    grid = GridSearch(space)
    cells = [p.params for p in grid.propose(0, 100).proposals]
    expected = [
        {"a": a, "b": b, "c": c} for a in (1, 2) for b in ("x", "y", "z") for c in (True, False)
    ]
    assert cells == expected
    assert [p.config_index for p in grid.propose(3, 2).proposals] == [3, 4]


def test_grid_n_experiments_is_a_prefix() -> None:
    space = Space.from_matrix({"a": {"range": {"start": 0, "stop": 10, "step": 1}}})
    grid = GridSearch(space, n_experiments=4)
    assert grid.planned == 4
    assert [p.params["a"] for p in grid.propose(0, 10).proposals] == [0, 1, 2, 3]
    assert grid.propose(4, 1).proposals == []
    assert GridSearch(space, n_experiments=100).planned == 10


def test_grid_refuses_continuous_options() -> None:
    with pytest.raises(ValueError, match="discrete"):
        GridSearch(Space.from_matrix({"a": {"uniform": {"low": 0, "high": 1}}}))


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ({"values": [1, "a", 2.5]}, [1, "a", 2.5]),
        ({"range": {"start": 1, "stop": 10, "step": 2}}, [1, 3, 5, 7, 9]),
        ({"range": {"start": 0.1, "stop": 0.4, "step": 0.1}}, [0.1, 0.2, 0.30000000000000004, 0.4]),
        ({"linspace": {"start": 0, "stop": 1, "num": 3}}, [0.0, 0.5, 1.0]),
        ({"logspace": {"start": 0, "stop": 2, "num": 3, "base": 10}}, [1.0, 10.0, 100.0]),
        ({"geomspace": {"start": 1, "stop": 8, "num": 4}}, [1.0, 2.0, 4.0, 8.0]),
        ({"pvalues": [["relu", 0.3], ["tanh", 0.7]]}, ["relu", "tanh"]),
    ],
)
def test_discrete_values(option: dict, expected: list) -> None:
    values = Param.from_option("p", option).values
    assert (
        values == pytest.approx(expected)
        if all(isinstance(v, float) for v in expected)
        else values == expected
    )
    assert all(type(v) is type(e) for v, e in zip(values, expected, strict=True))


@pytest.mark.parametrize(
    ("option", "check"),
    [
        ({"uniform": {"low": 2, "high": 3}}, lambda x: 2 <= x < 3),
        (
            {"quniform": {"low": 0, "high": 100, "q": 5}},
            lambda x: isinstance(x, int) and x % 5 == 0,
        ),
        ({"quniform": {"low": 0, "high": 1, "q": 0.25}}, lambda x: x in (0, 0.25, 0.5, 0.75, 1.0)),
        ({"loguniform": {"low": -3, "high": 0}}, lambda x: math.exp(-3) <= x <= 1),
        (
            {"qloguniform": {"low": 0, "high": 3, "q": 1}},
            lambda x: isinstance(x, int) and 1 <= x <= 20,
        ),
        ({"normal": {"loc": 66, "scale": 30}}, lambda x: isinstance(x, float)),
        ({"qnormal": {"loc": 0, "scale": 10, "q": 2}}, lambda x: isinstance(x, int) and x % 2 == 0),
        ({"lognormal": {"loc": 0, "scale": 1}}, lambda x: x > 0),
        (
            {"qlognormal": {"loc": 2, "scale": 1, "q": 0.5}},
            lambda x: x >= 0 and (x / 0.5).is_integer(),
        ),
        ({"uniform": {"low": 0, "high": 1, "size": 3}}, lambda x: len(x) == 3),
    ],
)
def test_distributions_sample_within_their_support(option: dict, check: object) -> None:
    param = Param.from_option("p", option)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert check(param.sample(rng)), option  # type: ignore[operator]


def test_pvalues_follow_their_probabilities() -> None:
    param = Param.from_option("p", {"pvalues": [["a", 0.1], ["b", 0.2], ["c", 0.7]]})
    rng = np.random.default_rng(1)
    counts = Counter(param.sample(rng) for _ in range(20_000))
    # Binomial sd of a share over 20,000 draws is below 0.0033; 0.02 is over 6 sd.
    assert counts["a"] / 20_000 == pytest.approx(0.1, abs=0.02)
    assert counts["c"] / 20_000 == pytest.approx(0.7, abs=0.02)


def test_pvalues_leftover_probability_goes_to_the_last_value() -> None:
    param = Param.from_option("p", {"pvalues": [["a", 0.5], ["b", 0.2]]})
    assert param.probabilities is not None
    assert param.probabilities.tolist() == pytest.approx([0.5, 0.5])


MIXED = {
    "lr": {"loguniform": {"low": -9, "high": -2}},
    "units": {"values": [16, 32]},
    "act": {"pvalues": [["relu", 0.5], ["tanh", 0.5]]},
}


def test_random_draw_i_is_a_function_of_seed_and_i() -> None:
    one = build_searcher("random", {"matrix": MIXED, "random_search": {"n_experiments": 50}}, 7)
    two = build_searcher("random", {"matrix": MIXED, "random_search": {"n_experiments": 50}}, 7)
    other = build_searcher("random", {"matrix": MIXED, "random_search": {"n_experiments": 50}}, 8)
    all_at_once = [p.params for p in one.propose(0, 50, no_taken).proposals]
    piecewise = [p.params for s in range(0, 50, 5) for p in two.propose(s, 5, no_taken).proposals]
    assert all_at_once == piecewise
    assert all_at_once != [p.params for p in other.propose(0, 50, no_taken).proposals]
    assert len({params_hash(p) for p in all_at_once}) == 50


def test_seed_zero_is_a_seed_like_any_other() -> None:
    spec = {"matrix": MIXED, "random_search": {"n_experiments": 5}}
    zero_a = build_searcher("random", spec, 0).propose(0, 5, no_taken)
    zero_b = build_searcher("random", spec, 0).propose(0, 5, no_taken)
    assert zero_a == zero_b


def test_all_discrete_unweighted_random_is_a_permutation() -> None:
    matrix = {"a": {"values": list(range(7))}, "b": {"range": {"start": 0, "stop": 11, "step": 1}}}
    search = RandomSearch(Space.from_matrix(matrix), seed=3, n_experiments=1000)
    assert search.planned == 77 and search.capped
    drawn = [p.params for p in search.propose(0, 77).proposals]
    assert len({(d["a"], d["b"]) for d in drawn}) == 77
    # Not simply grid order.
    assert drawn != [search.space.cell(i) for i in range(77)]


def test_weighted_discrete_random_is_unique_and_fills_the_space() -> None:
    matrix = {"a": {"values": [1, 2, 3]}, "b": {"pvalues": [["x", 0.98], ["y", 0.01], ["z", 0.01]]}}
    search = RandomSearch(Space.from_matrix(matrix), seed=11, n_experiments=50)
    drawn = FakeGroup().run(search)
    assert len(drawn) == 9
    assert len({(d["a"], d["b"]) for d in drawn}) == 9
    assert drawn == FakeGroup().run(
        RandomSearch(Space.from_matrix(matrix), seed=11, n_experiments=50)
    )


def test_quantized_space_stops_when_no_new_draw_is_found() -> None:
    matrix = {"q": {"quniform": {"low": 0, "high": 2, "q": 1}}}  # only 0, 1, 2
    search = RandomSearch(Space.from_matrix(matrix), seed=5, n_experiments=10)
    group = FakeGroup()
    drawn = group.run(search)
    assert sorted(d["q"] for d in drawn) == [0, 1, 2]
    assert search.propose(3, 1, group.taken).exhausted


@pytest.mark.parametrize("size", [1, 2, 3, 10, 97, 1000, 4097])
def test_permuted_index_is_a_bijection(size: int) -> None:
    assert sorted(permuted_index(i, size, 42) for i in range(size)) == list(range(size))


def test_permuted_index_handles_huge_spaces() -> None:
    size = 10**30
    picks = {permuted_index(i, size, 1) for i in range(100)}
    assert len(picks) == 100 and all(0 <= p < size for p in picks)

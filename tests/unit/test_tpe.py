"""TPE: support and type of every kind, determinism, batches and lies, exhaustion, search."""

import functools
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from app.algorithms.space import Space, params_hash
from app.algorithms.tpe import TPE, Observation, Suggestion, _Parzen

Objective = Callable[[dict[str, Any]], float]

BRANIN_MIN = 0.397887
BRANIN = Space.from_matrix(
    {"x1": {"uniform": {"low": -5, "high": 10}}, "x2": {"uniform": {"low": 0, "high": 15}}}
)

EVERY_KIND = Space.from_matrix(
    {
        "values": {"values": ["adam", "sgd", 3, 2.5, True]},
        "pvalues": {"pvalues": [["a", 0.6], ["b", 0.4], ["never", 0.0]]},
        "range": {"range": {"start": 0, "stop": 10, "step": 3}},
        "linspace": {"linspace": {"start": 0, "stop": 1, "num": 5}},
        "logspace": {"logspace": {"start": -3, "stop": 0, "num": 4, "base": 10}},
        "geomspace": {"geomspace": {"start": 1, "stop": 100, "num": 3}},
        "uniform": {"uniform": {"low": -1.5, "high": 2.5}},
        "quniform_int": {"quniform": {"low": 0, "high": 10, "q": 2}},
        "quniform_float": {"quniform": {"low": 0.0, "high": 1.0, "q": 0.25}},
        "loguniform": {"loguniform": {"low": -5, "high": 0}},
        "qloguniform": {"qloguniform": {"low": 0, "high": 4, "q": 5}},
        "normal": {"normal": {"loc": 3.0, "scale": 2.0}},
        "qnormal": {"qnormal": {"loc": 0.0, "scale": 2.0, "q": 0.5}},
        "lognormal": {"lognormal": {"loc": 0.0, "scale": 0.5}},
        "qlognormal": {"qlognormal": {"loc": 2.0, "scale": 0.5, "q": 1}},
    }
)


def branin(params: dict[str, Any]) -> float:
    x1, x2 = params["x1"], params["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def run(
    tpe: TPE, objective: Objective, n: int, *, start: int = 0
) -> tuple[list[Suggestion], list[Observation]]:
    """`n` sequential suggestions, each evaluated before the next is asked for."""
    suggestions: list[Suggestion] = []
    observations: list[Observation] = []
    taken: set[str] = set()
    for i in range(n):
        got = tpe.suggest(observations, [], taken, 1, draw_index=start + i)
        assert len(got) == 1
        (s,) = got
        assert s.params_hash == params_hash(s.params)
        assert s.params_hash not in taken
        taken.add(s.params_hash)
        suggestions.append(s)
        observations.append(Observation(s.params, objective(s.params)))
    return suggestions, observations


def is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def check_support(params: dict[str, Any], model_phase: bool) -> None:
    """Every value inside its kind's support and of the type random search gives."""
    assert set(params) == set(EVERY_KIND.names())
    for p in EVERY_KIND.params:
        v = params[p.name]
        if p.kind in ("values", "pvalues", "range", "linspace", "logspace", "geomspace"):
            # Same value and same type: 3 must not come back as 3.0, nor True as 1.
            assert any(v == w and type(v) is type(w) for w in p.values), (p.name, v)
            continue
        if p.name == "quniform_int":
            assert type(v) is int and 0 <= v <= 10 and v % 2 == 0, v
            continue
        if p.name == "qloguniform":
            # int q and int bounds give ints; exp(4) = 54.6 rounds to at most 55.
            assert type(v) is int and 0 <= v <= 55 and v % 5 == 0, v
            continue
        if p.name == "qlognormal":
            assert type(v) is int and v >= 0, v
            continue
        assert type(v) is float and math.isfinite(v), (p.name, v)
        match p.name:
            case "uniform":
                assert -1.5 <= v <= 2.5
            case "quniform_float":
                assert 0.0 <= v <= 1.0 and is_multiple(v, 0.25)
            case "loguniform":
                assert math.exp(-5) * (1 - 1e-12) <= v <= 1.0 + 1e-12
            case "normal":
                if model_phase:  # the model truncates normal kinds at loc +- 4 scale
                    assert 3.0 - 8.0 <= v <= 3.0 + 8.0
            case "qnormal":
                assert is_multiple(v, 0.5)
            case "lognormal":
                assert v > 0
                if model_phase:
                    assert math.exp(-2.0) * (1 - 1e-12) <= v <= math.exp(2.0) * (1 + 1e-12)


def every_kind_objective(params: dict[str, Any]) -> float:
    # Pulls the model toward a corner of several params, so model draws leave the centre.
    return (
        (params["uniform"] - 2.4) ** 2
        + abs(math.log(params["loguniform"]) + 4.5)
        + (params["normal"] - 6.0) ** 2
        + (0.0 if params["pvalues"] == "b" else 1.0)
        + 0.1 * params["quniform_int"]
    )


def test_every_matrix_kind_stays_in_its_support_with_the_right_type() -> None:
    tpe = TPE(EVERY_KIND, seed=11, maximize=False, n_initial_trials=8)
    suggestions, _ = run(tpe, every_kind_objective, 40)
    phases = Counter(s.reason["phase"] for s in suggestions)
    assert phases == {"initial": 8, "model": 32}
    for s in suggestions:
        check_support(s.params, model_phase=s.reason["phase"] == "model")
        assert s.params["pvalues"] != "never"  # probability zero: never proposed


def test_batches_of_every_kind_also_stay_in_support() -> None:
    tpe = TPE(EVERY_KIND, seed=5, maximize=True, n_initial_trials=0)
    observations = [
        Observation(EVERY_KIND.sample(9, i), -every_kind_objective(EVERY_KIND.sample(9, i)))
        for i in range(30)
    ]
    taken = {params_hash(o.params) for o in observations}
    batch = tpe.suggest(observations, [], taken, 12, draw_index=30)
    assert len(batch) == 12
    assert all(s.reason["phase"] == "model" for s in batch)
    for s in batch:
        check_support(s.params, model_phase=True)


def test_same_inputs_give_the_same_suggestions_and_the_seed_matters() -> None:
    observations = [
        Observation(BRANIN.sample(3, i), branin(BRANIN.sample(3, i))) for i in range(15)
    ]
    pending = [BRANIN.sample(4, 0)]
    taken = {params_hash(o.params) for o in observations} | {params_hash(pending[0])}

    def ask(seed: int) -> list[Suggestion]:
        tpe = TPE(BRANIN, seed=seed, maximize=False, n_initial_trials=5)
        return tpe.suggest(observations, pending, taken, 3, draw_index=16)

    first, again, other = ask(42), ask(42), ask(43)
    assert first == again
    assert [s.params for s in first] != [s.params for s in other]
    # The draw index is part of the seed too.
    tpe = TPE(BRANIN, seed=42, maximize=False, n_initial_trials=5)
    shifted = tpe.suggest(observations, pending, taken, 3, draw_index=17)
    assert [s.params for s in shifted] != [s.params for s in first]


def test_initial_phase_is_the_spaces_own_random_draws() -> None:
    tpe = TPE(BRANIN, seed=8, maximize=False, n_initial_trials=4)
    batch = tpe.suggest([], [], set(), 4, draw_index=0)
    assert [s.params for s in batch] == [BRANIN.sample(8, i) for i in range(4)]
    assert all(s.reason["phase"] == "initial" for s in batch)
    # Fewer than two metrics: still random, whatever the draw index.
    one = [Observation(batch[0].params, 1.0)]
    late = tpe.suggest(one, [], set(), 1, draw_index=50)
    assert late[0].reason["phase"] == "initial"
    assert late[0].params == BRANIN.sample(8, 50)


def test_initial_phase_skips_taken_configurations() -> None:
    space = Space.from_matrix({"a": {"values": [1, 2, 3, 4]}, "b": {"values": ["x", "y"]}})
    tpe = TPE(space, seed=2, maximize=True)
    first = space.sample(2, 0, 0)
    (s,) = tpe.suggest([], [], {params_hash(first)}, 1, draw_index=0)
    assert s.params != first
    assert s.params == next(
        space.sample(2, 0, a) for a in range(1, 64) if space.sample(2, 0, a) != first
    )


def batch_with_pending(constant_liar: bool, count: int = 5) -> tuple[list[Suggestion], set[str]]:
    observations = [
        Observation(BRANIN.sample(1, i), branin(BRANIN.sample(1, i))) for i in range(20)
    ]
    best = min(observations, key=lambda o: o.value).params
    # Running trials right next to the best point: where l(x) wants to go.
    pending = [{"x1": best["x1"] + d, "x2": best["x2"] - d} for d in (0.05, -0.1, 0.15)]
    taken = {params_hash(o.params) for o in observations} | {params_hash(p) for p in pending}
    tpe = TPE(BRANIN, seed=17, maximize=False, n_initial_trials=10, constant_liar=constant_liar)
    return tpe.suggest(observations, pending, taken, count, draw_index=23), taken


def test_a_batch_with_pending_trials_has_no_duplicates() -> None:
    for liar in (True, False):
        batch, taken = batch_with_pending(liar)
        hashes = [s.params_hash for s in batch]
        assert len(batch) == 5
        assert len(set(hashes)) == 5
        assert not set(hashes) & taken
        for s in batch:
            assert s.reason["n_pending"] == 3
            assert s.reason["pending_strategy"] == ("constant_liar" if liar else None)


def test_the_constant_liar_changes_the_batch() -> None:
    lied, _ = batch_with_pending(True)
    honest, _ = batch_with_pending(False)
    assert [s.params for s in lied] != [s.params for s in honest]
    # The first draws of the two batches see the same l(x), so their candidates
    # are the same; only the lie about the pending trials can tell them apart.
    assert lied[0].reason["log_ratio"] != honest[0].reason["log_ratio"]


def test_without_pending_the_liar_only_affects_later_points_of_a_batch() -> None:
    observations = [
        Observation(BRANIN.sample(6, i), branin(BRANIN.sample(6, i))) for i in range(20)
    ]
    taken = {params_hash(o.params) for o in observations}

    def ask(liar: bool, count: int) -> list[Suggestion]:
        tpe = TPE(BRANIN, seed=3, maximize=False, constant_liar=liar)
        return tpe.suggest(observations, [], taken, count, draw_index=20)

    assert ask(True, 1) == ask(False, 1)
    assert ask(True, 1)[0].reason["pending_strategy"] is None
    lied, honest = ask(True, 4), ask(False, 4)
    assert lied[0] == honest[0]
    assert [s.reason["pending_strategy"] for s in lied] == [None] + ["constant_liar"] * 3
    # Later draws see the same l(x), and often keep the same candidate; the lie
    # shows in g(x), so in the log ratio each later pick was chosen with.
    for a, b in zip(lied[1:], honest[1:], strict=True):
        assert a.reason["log_ratio"] != b.reason["log_ratio"]


def small_objective(params: dict[str, Any]) -> float:
    return params["a"] + (0.5 if params["b"] == "x" else 0.0)


def test_a_discrete_space_never_repeats_and_runs_out() -> None:
    space = Space.from_matrix({"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})
    tpe = TPE(space, seed=4, maximize=False, n_initial_trials=2)
    suggestions, observations = run(tpe, small_objective, 6)
    assert [s.reason["phase"] for s in suggestions] == ["initial"] * 2 + ["model"] * 4
    assert len({s.params_hash for s in suggestions}) == 6
    taken = {s.params_hash for s in suggestions}
    assert tpe.suggest(observations, [], taken, 3, draw_index=6) == []


def test_a_batch_larger_than_a_discrete_space_returns_fewer() -> None:
    space = Space.from_matrix(
        {
            "a": {"pvalues": [["p", 0.5], ["q", 0.5], ["never", 0.0]]},
            "b": {"range": {"start": 0, "stop": 2, "step": 1}},
        }
    )
    observations = [
        Observation({"a": "p", "b": 0}, 1.0),
        Observation({"a": "q", "b": 1}, 2.0),
    ]
    taken = {params_hash(o.params) for o in observations}
    tpe = TPE(space, seed=1, maximize=True, n_initial_trials=0)
    batch = tpe.suggest(observations, [], taken, 10, draw_index=2)
    # 3 x 2 cells, of which 2 carry a zero probability and 2 are taken.
    assert sorted((s.params["a"], s.params["b"]) for s in batch) == [("p", 1), ("q", 0)]
    assert all(s.reason["phase"] == "model" for s in batch)


def test_a_quantized_space_runs_out_too() -> None:
    space = Space.from_matrix({"k": {"quniform": {"low": 0, "high": 2, "q": 1}}})
    tpe = TPE(space, seed=9, maximize=True, n_initial_trials=1)
    suggestions, observations = run(tpe, lambda p: float(p["k"]), 3)
    assert sorted(s.params["k"] for s in suggestions) == [0, 1, 2]
    taken = {s.params_hash for s in suggestions}
    assert tpe.suggest(observations, [], taken, 2, draw_index=3) == []


def best_regret(observations: list[Observation]) -> float:
    return min(o.value for o in observations) - BRANIN_MIN


def test_tpe_minimises_branin_better_than_random_search() -> None:
    tpe = TPE(BRANIN, seed=0, maximize=False)
    suggestions, observations = run(tpe, branin, 60)
    regret = best_regret(observations)
    random_regrets = sorted(
        min(branin(BRANIN.sample(seed, i)) for i in range(60)) - BRANIN_MIN for seed in range(5)
    )
    assert regret < 1.0
    assert regret < random_regrets[2]
    # The model, not the ten random draws, found it.
    assert best_regret(observations[10:]) < best_regret(observations[:10])


def test_maximising_branin_is_the_same_search_with_the_sign_flipped() -> None:
    down = run(TPE(BRANIN, seed=0, maximize=False), branin, 30)[0]
    up = run(TPE(BRANIN, seed=0, maximize=True), lambda p: -branin(p), 30)[0]
    assert [s.params for s in down] == [s.params for s in up]
    # And maximising the metric itself goes elsewhere.
    wrong = run(TPE(BRANIN, seed=0, maximize=True), branin, 30)[0]
    assert [s.params for s in wrong] != [s.params for s in down]


@pytest.mark.parametrize("maximize", [False, True])
def test_a_much_better_category_is_chosen_most_often(maximize: bool) -> None:
    space = Space.from_matrix(
        {
            "opt": {"values": ["adam", "sgd", "rmsprop", "adagrad"]},
            "lr": {"loguniform": {"low": -7, "high": 0}},
        }
    )

    def loss(params: dict[str, Any]) -> float:
        base = 0.0 if params["opt"] == "rmsprop" else 5.0
        return base + 0.1 * abs(math.log(params["lr"]) + 3.0)

    def metric(params: dict[str, Any]) -> float:
        return -loss(params) if maximize else loss(params)

    tpe = TPE(space, seed=21, maximize=maximize, n_initial_trials=10)
    suggestions, _ = run(tpe, metric, 50)
    model = [s.params["opt"] for s in suggestions if s.reason["phase"] == "model"]
    assert len(model) == 40
    # Random choice would give it a quarter of the draws.
    assert Counter(model)["rmsprop"] >= 0.6 * len(model)


def test_reason_fields_are_filled_and_json_serialisable() -> None:
    tpe = TPE(BRANIN, seed=12, maximize=False, n_initial_trials=4, gamma=0.1)
    observations = [
        Observation(BRANIN.sample(2, i), branin(BRANIN.sample(2, i))) for i in range(30)
    ]
    observations.append(Observation(BRANIN.sample(2, 99), math.nan))  # no metric: ignored
    pending = [BRANIN.sample(5, 0), BRANIN.sample(5, 1)]
    taken = {params_hash(o.params) for o in observations}
    batch = tpe.suggest(observations, pending, taken, 2, draw_index=31)
    keys = {"phase", "log_ratio", "n_observations", "n_pending", "pending_strategy", "gamma_split"}
    for s in batch:
        assert set(s.reason) == keys
        json.dumps(s.reason, allow_nan=False)
        assert s.reason["phase"] == "model"
        assert isinstance(s.reason["log_ratio"], float) and math.isfinite(s.reason["log_ratio"])
        assert s.reason["n_observations"] == 30
        assert s.reason["n_pending"] == 2
        assert s.reason["pending_strategy"] == "constant_liar"
        assert s.reason["gamma_split"] == 3  # ceil(0.1 * 30)
    initial = TPE(BRANIN, seed=12, maximize=False).suggest(observations, [], taken, 1, draw_index=0)
    assert initial[0].reason == {
        "phase": "initial",
        "log_ratio": None,
        "n_observations": 30,
        "n_pending": 0,
        "pending_strategy": None,
        "gamma_split": None,
    }
    json.dumps(initial[0].reason, allow_nan=False)


def test_the_good_set_is_gamma_of_the_observations_and_at_least_one() -> None:
    tpe = TPE(BRANIN, seed=0, maximize=False)  # gamma 0.12, 0.1 while lying
    assert [tpe.n_good(n) for n in (1, 2, 8, 9, 16, 17, 200)] == [1, 1, 1, 2, 2, 3, 24]
    lying = [tpe.n_good(n, lying=True) for n in (1, 10, 11, 20, 21, 200)]
    assert lying == [1, 1, 2, 2, 3, 20]
    quarter = TPE(BRANIN, seed=0, maximize=False, gamma=0.25)
    assert [quarter.n_good(n) for n in (1, 2, 4, 5, 8, 9, 200)] == [1, 1, 1, 2, 2, 3, 50]
    assert TPE(BRANIN, seed=0, maximize=False, gamma=1.0).n_good(7) == 7
    # 0.55 * 100 is 55.00000000000001 in floating point; the split is still 55.
    assert TPE(BRANIN, seed=0, maximize=False, gamma=0.55).n_good(100) == 55


def test_the_good_set_shrinks_while_the_constant_liar_lies() -> None:
    observations = [
        Observation(BRANIN.sample(4, i), branin(BRANIN.sample(4, i))) for i in range(50)
    ]
    taken = {params_hash(o.params) for o in observations}
    tpe = TPE(BRANIN, seed=3, maximize=False, gamma=0.2, batch_gamma=0.1)

    def split(pending: list[dict[str, Any]], count: int) -> list[int]:
        picks = tpe.suggest(observations, pending, taken, count, draw_index=50)
        return [s.reason["gamma_split"] for s in picks]

    assert split([], 1) == [10]  # nothing running: gamma
    assert split([BRANIN.sample(5, 0)], 2) == [5, 5]  # a running trial is a lie
    assert split([], 3) == [10, 5, 5]  # so are the earlier picks of a batch
    honest = TPE(BRANIN, seed=3, maximize=False, gamma=0.2, constant_liar=False)
    assert (
        honest.suggest(observations, [BRANIN.sample(5, 0)], taken, 2, draw_index=50)[0].reason[
            "gamma_split"
        ]
        == 10
    )


def test_points_that_share_a_value_take_the_floor_whatever_their_order() -> None:
    fit = functools.partial(
        _Parzen.fit, low=-0.5, high=4.5, prior_mu=2.0, prior_sigma=5.0, prior_weight=1.0
    )
    floor = 5.0 / 8  # six points
    # Ranks 0 and 3 are tried twice: floor. 1 has neighbours 0 and 3 (gaps 1 and 2),
    # 4 is outermost and has 3 (gap 1). The old rule gave one copy of 0 and of 3 a
    # gap instead, and which copy depended on the order.
    points = np.array([3.0, 0.0, 1.0, 3.0, 4.0, 0.0])
    expected = {0.0: floor, 1.0: 2.0, 3.0: floor, 4.0: 1.0}
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = rng.permutation(points)
        parzen = fit(shuffled)
        assert parzen.sigmas[:-1] == pytest.approx([expected[v] for v in shuffled])


def test_model_draws_are_truncated_not_clipped_at_the_bounds() -> None:
    # The best points sit on the upper bound; a sampler that clipped instead of
    # truncating would pile its draws exactly on it.
    space = Space.from_matrix({"x": {"uniform": {"low": 0.0, "high": 1.0}}})
    tpe = TPE(space, seed=6, maximize=True, n_initial_trials=5)
    suggestions, _ = run(tpe, lambda p: p["x"], 40)
    model = [s.params["x"] for s in suggestions if s.reason["phase"] == "model"]
    assert all(0.0 < x < 1.0 for x in model)
    assert sorted(model)[len(model) // 2] > 0.8  # and they do go where the metric is best


@pytest.mark.parametrize(
    ("values", "best", "as_observed"),
    [
        ([1, True, 0, "1"], True, True),  # True is not 1
        ([1, True, 0, "1"], 1, 1.0),  # 1.0 after a JSON round trip is still 1
        ([1, True, 0, "1"], "1", "1"),  # nor is "1"
    ],
)
def test_observed_values_are_matched_by_value_and_kind(
    values: list[Any], best: Any, as_observed: Any
) -> None:
    space = Space.from_matrix(
        {"k": {"values": values}, "x": {"uniform": {"low": 0.0, "high": 1.0}}}
    )
    observations = [
        Observation(
            {"k": as_observed if v is best else v, "x": (i + 0.5) / 20}, 0.0 if v is best else 1.0
        )
        for i in range(5)
        for v in values
    ]
    taken = {params_hash(o.params) for o in observations}
    tpe = TPE(space, seed=13, maximize=False, n_initial_trials=0)
    batch = tpe.suggest(observations, [], taken, 20, draw_index=len(observations))
    picked = [s.params["k"] for s in batch]
    assert sum(1 for k in picked if k is best or (k == best and type(k) is type(best))) >= 12


def test_a_list_valued_param_is_refused_by_name() -> None:
    space = Space.from_matrix(
        {
            "ok": {"uniform": {"low": 0, "high": 1}},
            "widths": {"uniform": {"low": 0, "high": 1, "size": 3}},
        }
    )
    with pytest.raises(ValueError, match="'widths'"):
        TPE(space, seed=0, maximize=True)


@pytest.mark.parametrize(
    "settings",
    [
        {"gamma": 0.0},
        {"gamma": 1.5},
        {"n_candidates": 0},
        {"n_initial_trials": -1},
        {"prior_weight": 0.0},
        {"prior_weight": math.inf},
    ],
)
def test_settings_out_of_range_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TPE(BRANIN, seed=0, maximize=True, **settings)


def test_negative_count_or_draw_index_is_refused() -> None:
    tpe = TPE(BRANIN, seed=0, maximize=True)
    with pytest.raises(ValueError, match="count"):
        tpe.suggest([], [], set(), -1, draw_index=0)
    with pytest.raises(ValueError, match="draw_index"):
        tpe.suggest([], [], set(), 1, draw_index=-1)
    assert tpe.suggest([], [], set(), 0, draw_index=0) == []


# -- the joint (multivariate) estimator and numeric lists -------------------------------

DIAGONAL = Space.from_matrix(
    {"x": {"uniform": {"low": 0.0, "high": 1.0}}, "y": {"uniform": {"low": 0.0, "high": 1.0}}}
)


def on_the_diagonal(params: dict[str, Any]) -> bool:
    """The good quadrants: both coordinates low or both high."""
    return (params["x"] < 0.5) == (params["y"] < 0.5)


def diagonal_picks(multivariate: bool) -> float:
    """The share of 30 model draws in the good quadrants, after 80 observations.

    Each coordinate alone says nothing here: half of the good points have x low and
    half high, and so for y. Only the pair tells good from bad.
    """
    history = [DIAGONAL.sample(5, i) for i in range(80)]
    observations = [Observation(p, 0.0 if on_the_diagonal(p) else 1.0) for p in history]
    taken = {params_hash(p) for p in history}
    tpe = TPE(DIAGONAL, seed=2, maximize=False, n_initial_trials=0, multivariate=multivariate)
    picks = [
        tpe.suggest(observations, [], taken, 1, draw_index=80 + i)[0].params for i in range(30)
    ]
    return sum(on_the_diagonal(p) for p in picks) / len(picks)


def test_the_joint_estimator_finds_what_the_marginals_cannot() -> None:
    assert diagonal_picks(multivariate=True) >= 0.8
    # Independent densities per param see flat marginals: about a coin toss.
    assert diagonal_picks(multivariate=False) <= 0.7


def test_multivariate_is_the_default_and_deterministic() -> None:
    history = [DIAGONAL.sample(9, i) for i in range(30)]
    observations = [Observation(p, p["x"] + p["y"]) for p in history]
    taken = {params_hash(p) for p in history}
    default = TPE(DIAGONAL, seed=4, maximize=False)
    joint = TPE(DIAGONAL, seed=4, maximize=False, multivariate=True)
    apart = TPE(DIAGONAL, seed=4, maximize=False, multivariate=False)
    first = default.suggest(observations, [{"x": 0.1, "y": 0.1}], taken, 3, draw_index=30)
    again = joint.suggest(observations, [{"x": 0.1, "y": 0.1}], taken, 3, draw_index=30)
    other = apart.suggest(observations, [{"x": 0.1, "y": 0.1}], taken, 3, draw_index=30)
    assert [s.params for s in first] == [s.params for s in again]
    assert [s.params for s in first] != [s.params for s in other]
    assert len({s.params_hash for s in first}) == 3


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_numeric_list_is_searched_by_rank(multivariate: bool) -> None:
    # Only even values were tried and 8 was the best: its unseen neighbours 7 and 9
    # are the promising ones. A categorical model would rate every unseen value alike.
    space = Space.from_matrix({"k": {"range": {"start": 0, "stop": 40, "step": 1}}})
    observations = [Observation({"k": v}, abs(v - 8.3)) for v in range(0, 40, 2)]
    taken = {params_hash(o.params) for o in observations}
    tpe = TPE(space, seed=1, maximize=False, n_initial_trials=0, multivariate=multivariate)
    picks = [
        tpe.suggest(observations, [], taken, 1, draw_index=20 + i)[0].params["k"] for i in range(20)
    ]
    assert all(type(k) is int and k % 2 == 1 for k in picks)
    assert sum(1 for k in picks if k in (7, 9)) >= 10


def test_a_kernel_is_as_wide_as_the_gap_to_its_farther_neighbour_not_to_the_edge() -> None:
    fit = functools.partial(_Parzen.fit, low=0.0, high=1.0, prior_mu=0.5, prior_weight=1.0)
    # 0.4 has one neighbour (0.6): 0.2, not its 0.4 to the lower edge; 0.6: max(0.2, 0.05);
    # 0.65 and 0.7 are 0.05 apart, below the floor 0.5 / (4 + 2); the prior keeps 0.5.
    parzen = fit(np.array([0.7, 0.4, 0.65, 0.6]), prior_sigma=0.5)
    floor = 0.5 / 6
    assert parzen.sigmas == pytest.approx([floor, 0.2, floor, 0.2, 0.5])
    assert parzen.mus == pytest.approx([0.7, 0.4, 0.65, 0.6, 0.5])
    # A single point has no neighbour: the edges stand in (0.7 here, capped at the prior's).
    assert fit(np.array([0.3]), prior_sigma=0.5).sigmas == pytest.approx([0.5, 0.5])
    assert fit(np.array([0.3]), prior_sigma=1.0).sigmas == pytest.approx([0.7, 1.0])

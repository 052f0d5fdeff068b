"""GP-based Bayesian optimisation: acquisitions, the Sobol design, batches, repeats, Branin."""

import itertools
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from scipy.stats import qmc
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

from app.algorithms.bayes import (
    GP_ALPHA,
    BayesianOptimizer,
    Observation,
    Suggestion,
    _Likelihood,
    _log_prior,
    _Posterior,
    _starts,
    acquisition,
    log_acquisition,
)
from app.algorithms.encoding import Encoder
from app.algorithms.space import Space, params_hash

SQUARE = Space.from_matrix(
    {"x": {"uniform": {"low": 0.0, "high": 1.0}}, "y": {"uniform": {"low": 0.0, "high": 1.0}}}
)
BRANIN_SPACE = Space.from_matrix(
    {"x1": {"uniform": {"low": -5.0, "high": 10.0}}, "x2": {"uniform": {"low": 0.0, "high": 15.0}}}
)
BRANIN_MIN = 0.397887
SMALL_DISCRETE = Space.from_matrix({"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})


def branin(x1: float, x2: float) -> float:
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def wavy(params: dict[str, Any]) -> float:
    return math.sin(7 * params["x"]) * math.cos(5 * params["y"]) + params["x"]


def make(space: Space = SQUARE, **kwargs: Any) -> BayesianOptimizer:
    options: dict[str, Any] = {"seed": 3, "maximize": False, "n_initial_trials": 5}
    options.update(kwargs)
    return BayesianOptimizer(space, **options)


def observe(space: Space, f: Any, n: int, seed: int = 4) -> list[Observation]:
    params = [space.sample(seed, i) for i in range(n)]
    return [Observation(p, f(p)) for p in params]


def min_distance(points: np.ndarray) -> float:
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(points, 2))


# -- acquisition functions ----------------------------------------------------------


def test_acquisition_against_hand_computed_values() -> None:
    mu, sigma = np.array([1.0, 0.0]), np.array([0.5, 2.0])
    # z = (1 - 0.5 - 0.1) / 0.5 = 0.8 and (0 - 0.5 - 0.1) / 2 = -0.3.
    phi_08, pdf_08 = 0.7881446014166034, 0.2896915527614827
    phi_m03, pdf_m03 = 0.3820885778110474, 0.38138781546052414
    np.testing.assert_allclose(
        acquisition("ucb", mu, sigma, 0.5, kappa=2.0, eps=0.1), [2.0, 4.0], rtol=1e-12
    )
    np.testing.assert_allclose(
        acquisition("ei", mu, sigma, 0.5, kappa=2.0, eps=0.1),
        [0.4 * phi_08 + 0.5 * pdf_08, -0.6 * phi_m03 + 2.0 * pdf_m03],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        acquisition("poi", mu, sigma, 0.5, kappa=2.0, eps=0.1), [phi_08, phi_m03], rtol=1e-12
    )


def test_acquisition_with_vanishing_sigma() -> None:
    mu, sigma = np.array([1.0, 0.2, 0.5]), np.zeros(3)
    np.testing.assert_allclose(
        acquisition("ucb", mu, sigma, 0.5, kappa=2.0, eps=0.0), mu, atol=1e-8
    )
    np.testing.assert_allclose(
        acquisition("ei", mu, sigma, 0.5, kappa=2.0, eps=0.0), [0.5, 0.0, 0.0], atol=1e-8
    )
    np.testing.assert_allclose(
        acquisition("poi", mu, sigma, 0.5, kappa=2.0, eps=0.0), [1.0, 0.0, 0.5], atol=1e-12
    )
    # eps moves the bar: an improvement of 0.5 is not one of 0.6.
    np.testing.assert_allclose(
        acquisition("poi", mu, sigma, 0.5, kappa=2.0, eps=0.6), [0.0, 0.0, 0.0], atol=1e-12
    )


def test_acquisition_unknown_kind() -> None:
    with pytest.raises(ValueError, match="lcb"):
        acquisition("lcb", np.zeros(1), np.ones(1), 0.0, kappa=1.0, eps=0.0)


@pytest.mark.parametrize("kind", ["ei", "poi"])
def test_log_acquisition_is_the_log_and_stays_finite_where_it_underflows(kind: str) -> None:
    mu = np.linspace(-6.0, 4.0, 41)
    sigma = np.full(41, 0.7)
    plain = acquisition(kind, mu, sigma, 1.0, kappa=2.0, eps=0.1)
    logged = log_acquisition(kind, mu, sigma, 1.0, kappa=2.0, eps=0.1)
    np.testing.assert_allclose(np.exp(logged), plain, rtol=1e-9)
    # 60 and 600 deviations below the incumbent: 0 in plain arithmetic, ordered in logs.
    far = log_acquisition(kind, np.array([-42.0, -420.0]), np.ones(2), 0.0, kappa=0.0, eps=0.0)
    assert np.all(np.isfinite(far)) and far[0] > far[1]
    assert acquisition(kind, np.array([-420.0]), np.ones(1), 0.0, kappa=0.0, eps=0.0)[0] == 0.0
    ucb = log_acquisition("ucb", mu, sigma, 1.0, kappa=2.0, eps=0.1)
    np.testing.assert_allclose(ucb, acquisition("ucb", mu, sigma, 1.0, kappa=2.0, eps=0.1))


# -- the model's building blocks ------------------------------------------------------


@pytest.mark.parametrize("shape", ["rbf", 1.5, 2.5])
def test_fast_likelihood_matches_scikit_learn(shape: str | float) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 3)), rng.normal(size=30)
    X[7] = X[8]  # a duplicate
    base = (
        RBF(np.ones(3), (1e-2, 1e2))
        if shape == "rbf"
        else Matern(np.ones(3), (1e-2, 1e2), nu=shape)
    )
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * base + WhiteKernel(1e-3, (1e-6, 1e-1))
    gp = GaussianProcessRegressor(kernel, alpha=GP_ALPHA, optimizer=None).fit(X, y)
    for _ in range(4):
        theta = rng.uniform(kernel.bounds[:, 0], kernel.bounds[:, 1])
        expected, gradient = gp.log_marginal_likelihood(theta, eval_gradient=True)
        value, mine = _Likelihood(X, y, shape)(theta)
        assert value == pytest.approx(-expected, rel=1e-9)
        np.testing.assert_allclose(mine, -gradient, rtol=1e-6, atol=1e-6)


def test_the_prior_adds_its_penalty_and_gradient() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.random((20, 2)), rng.normal(size=20)
    theta = np.log([1.5, 0.3, 2.0, 1e-3])
    plain, plain_gradient = _Likelihood(X, y, 2.5)(theta)
    value, gradient = _Likelihood(X, y, 2.5, prior=True)(theta)
    penalty, slope = _log_prior(theta)
    assert value == pytest.approx(plain + penalty, rel=1e-12)
    np.testing.assert_allclose(gradient, plain_gradient + slope, rtol=1e-12)
    step = 1e-6
    for j in range(len(theta)):
        shift = np.zeros_like(theta)
        shift[j] = step
        numeric = (_log_prior(theta + shift)[0] - _log_prior(theta - shift)[0]) / (2 * step)
        assert slope[j] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_the_fit_finds_a_short_length_scale_where_the_function_needs_one() -> None:
    # Fast in x, flat in y: x needs a short length scale, y a long one.
    space = SQUARE
    optimizer = make(space)
    points = [space.sample(7, i) for i in range(40)]
    X = optimizer.encoder.encode_many(points)
    y = np.array([math.sin(20.0 * p["x"]) for p in points])
    fitted = optimizer._fit(X, (y - y.mean()) / y.std(), draw_index=40)
    short, long = fitted.k1.k2.length_scale
    assert short < 0.25
    assert long > 3 * short
    assert fitted.k2.noise_level < 1e-2


def test_posterior_matches_scikit_learn_without_the_noise() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.random((25, 2)), rng.normal(size=25)
    kernel = ConstantKernel(2.0) * Matern([0.3, 0.5], nu=2.5) + WhiteKernel(0.01)
    gp = GaussianProcessRegressor(kernel, alpha=GP_ALPHA, optimizer=None).fit(X, y)
    points = rng.random((40, 2))
    mean, std = gp.predict(points, return_std=True)
    mine_mean, mine_std = _Posterior(gp.kernel_.k1, X, y, np.full(25, 0.01)).predict(points)
    np.testing.assert_allclose(mine_mean, mean, rtol=1e-8, atol=1e-10)
    # scikit-learn's std includes the observation noise; ours is of the function.
    np.testing.assert_allclose(mine_std**2 + 0.01, std**2, rtol=1e-8, atol=1e-10)


# -- initial design ---------------------------------------------------------------------


def test_initial_design_is_the_seeded_sobol_sequence() -> None:
    out = make(n_initial_trials=8, seed=21).suggest([], [], set(), 8, draw_index=0)
    encoder = Encoder(SQUARE)
    points = np.array([encoder.encode(s.params) for s in out])
    expected = qmc.Sobol(d=2, scramble=True, seed=21).random_base2(3)
    np.testing.assert_allclose(points, expected, atol=1e-12)
    # Space filling: each eighth of each axis holds exactly one of the 8 points.
    for column in points.T:
        assert sorted(np.floor(column * 8).astype(int)) == list(range(8))
    assert all(s.reason["phase"] == "initial" for s in out)
    assert all(s.params_hash == params_hash(s.params) for s in out)


def test_initial_design_depends_on_the_seed_only() -> None:
    first = make(seed=5).suggest([], [], set(), 5, draw_index=0)
    again = make(seed=5).suggest([], [], set(), 5, draw_index=0)
    other = make(seed=6).suggest([], [], set(), 5, draw_index=0)
    assert [s.params for s in first] == [s.params for s in again]
    assert all(a.params != b.params for a, b in zip(first, other, strict=True))


def test_initial_design_continues_across_calls() -> None:
    optimizer = make(n_initial_trials=8)
    whole = optimizer.suggest([], [], set(), 8, draw_index=0)
    head = optimizer.suggest([], [], set(), 3, draw_index=0)
    tail = optimizer.suggest([], [], {s.params_hash for s in head}, 5, draw_index=3)
    assert [s.params for s in head + tail] == [s.params for s in whole]


def test_initial_design_skips_taken_points_of_a_discrete_space() -> None:
    optimizer = make(SMALL_DISCRETE, n_initial_trials=6)
    free = optimizer.suggest([], [], set(), 3, draw_index=0)
    taken = {free[0].params_hash, free[2].params_hash}
    out = optimizer.suggest([], [], taken, 4, draw_index=0)
    hashes = [s.params_hash for s in out]
    assert len(out) == 4 and len(set(hashes)) == 4 and not taken & set(hashes)
    # Six cells in all: with two taken only four are left, however many are asked for.
    assert len(optimizer.suggest([], [], taken, 6, draw_index=0)) == 4
    assert optimizer.suggest([], [], taken | set(hashes), 2, draw_index=4) == []


def test_fewer_than_two_observations_fall_back_to_the_design() -> None:
    optimizer = make(n_initial_trials=2)
    one = observe(SQUARE, wavy, 1)
    out = optimizer.suggest(one, [], set(), 2, draw_index=6)
    assert [s.reason["phase"] for s in out] == ["initial", "initial"]
    expected = qmc.Sobol(d=2, scramble=True, seed=3).random_base2(3)[6:8]
    encoder = Encoder(SQUARE)
    np.testing.assert_allclose([encoder.encode(s.params) for s in out], expected, atol=1e-12)


def test_a_batch_straddling_the_design_ends_with_model_picks() -> None:
    observations = observe(SQUARE, wavy, 3)
    pending = [SQUARE.sample(9, 0)]
    out = make().suggest(observations, pending, set(), 4, draw_index=3)
    assert [s.reason["phase"] for s in out] == ["initial", "initial", "model", "model"]
    # The first model pick sees the running trial and the two design points as pending.
    assert [s.reason["n_pending"] for s in out] == [1, 1, 3, 4]
    assert out[2].reason["pending_strategy"] == "kriging_believer"
    assert len({s.params_hash for s in out}) == 4


# -- batches, pending points and repeats ---------------------------------------------


@pytest.mark.parametrize("strategy", ["constant_liar", "kriging_believer"])
def test_batch_with_pending_points_is_spread_out(strategy: str) -> None:
    encoder = Encoder(SQUARE)
    observations = observe(SQUARE, wavy, 10)
    optimizer = make(pending_strategy=strategy)
    # The point the model wants most is running: the batch must go elsewhere.
    favourite = optimizer.suggest(observations, [], set(), 1, draw_index=10)[0]
    assert favourite.reason["pending_strategy"] is None
    taken = {params_hash(o.params) for o in observations} | {favourite.params_hash}
    out = optimizer.suggest(observations, [favourite.params], taken, 3, draw_index=11)
    assert len(out) == 3
    assert len({s.params_hash for s in out} | taken) == len(taken) + 3
    points = np.array([encoder.encode(s.params) for s in out] + [encoder.encode(favourite.params)])
    assert min_distance(points) > 0.05
    assert [s.reason["n_pending"] for s in out] == [1, 2, 3]
    assert all(s.reason["pending_strategy"] == strategy for s in out)


def test_a_discrete_space_never_repeats_and_runs_out() -> None:
    cells = [SMALL_DISCRETE.cell(i) for i in range(6)]
    observations = [Observation(c, float(c["a"]) + (c["b"] == "y")) for c in cells[:3]]
    pending = [cells[3]]
    taken = {params_hash(c) for c in cells[:4]}
    optimizer = make(SMALL_DISCRETE, maximize=True, n_initial_trials=2)
    out = optimizer.suggest(observations, pending, taken, 5, draw_index=4)
    assert sorted(s.params_hash for s in out) == sorted(params_hash(c) for c in cells[4:])
    assert all(s.reason["phase"] == "model" for s in out)
    assert (
        optimizer.suggest(observations, pending, {params_hash(c) for c in cells}, 1, draw_index=6)
        == []
    )


def test_a_large_discrete_space_skips_the_taken_optimum() -> None:
    space = Space.from_matrix(
        {
            "a": {"range": {"start": 0, "stop": 100, "step": 1}},
            "b": {"range": {"start": 0, "stop": 100, "step": 1}},
        }
    )
    assert space.size > 2048  # searched through candidates, not exhaustively

    def bowl(p: dict[str, Any]) -> float:
        return (p["a"] - 50) ** 2 + (p["b"] - 50) ** 2

    # The optimum and its eight neighbours are taken; kappa 0 makes the GP mean the
    # acquisition, whose best cells are exactly those.
    block = [{"a": 50 + i, "b": 50 + j} for i in (-1, 0, 1) for j in (-1, 0, 1)]
    params = [space.sample(1, i) for i in range(25)] + block
    observations = [Observation(p, bowl(p)) for p in params]
    taken = {params_hash(p) for p in params}
    out = make(space, kappa=0.0).suggest(observations, [], taken, 2, draw_index=40)
    hashes = {s.params_hash for s in out}
    assert len(out) == 2 and len(hashes) == 2 and not hashes & taken
    # Still exploiting: next to the taken block.
    assert all(abs(s.params["a"] - 50) <= 3 and abs(s.params["b"] - 50) <= 3 for s in out)


def test_duplicate_observations_do_not_break_the_fit() -> None:
    cells = [SMALL_DISCRETE.cell(i) for i in range(3)]
    observations = [Observation(c, float(k)) for k in range(4) for c in cells]
    out = make(SMALL_DISCRETE).suggest(
        observations, [], {params_hash(c) for c in cells}, 2, draw_index=12
    )
    assert len(out) == 2 and all(s.reason["phase"] == "model" for s in out)


def test_same_inputs_give_the_same_suggestions() -> None:
    observations = observe(SQUARE, wavy, 8)
    pending = [SQUARE.sample(2, 0)]

    def run() -> list[Suggestion]:
        return make(acquisition="ei").suggest(observations, pending, set(), 2, draw_index=9)

    assert run() == run()


def test_every_matrix_kind_goes_through_the_model() -> None:
    space = Space.from_matrix(
        {
            "lr": {"loguniform": {"low": -9.0, "high": -1.0}},
            "units": {"quniform": {"low": 16, "high": 256, "q": 16}},
            "decay": {"logspace": {"start": -4, "stop": -1, "num": 4}},
            "opt": {"values": ["adam", "sgd", "rmsprop"]},
            "act": {"pvalues": [["relu", 0.5], ["tanh", 0.3], ["elu", 0.2]]},
            "drop": {"normal": {"loc": 0.3, "scale": 0.1}},
            "batch": {"qlognormal": {"loc": 4.0, "scale": 0.5, "q": 8}},
        }
    )

    def score(p: dict[str, Any]) -> float:
        return (math.log(p["lr"]) + 5) ** 2 + (p["opt"] == "sgd") + abs(p["drop"] - 0.3)

    observations = observe(space, score, 12)
    out = make(space).suggest(observations, [], set(), 2, draw_index=12)
    assert len(out) == 2
    for s in out:
        assert set(s.params) == set(space.names())
        assert not space.check(s.params)
        assert s.params["units"] % 16 == 0 and s.params["batch"] % 8 == 0
        assert s.params["decay"] in space.params[2].values


def test_a_list_valued_param_is_refused() -> None:
    space = Space.from_matrix({"w": {"uniform": {"low": 0, "high": 1, "size": 2}}})
    with pytest.raises(ValueError, match="'w'"):
        make(space)


@pytest.mark.parametrize(
    "option", [{"acquisition": "lcb"}, {"kernel": "periodic"}, {"pending_strategy": "mean"}]
)
def test_unknown_options_are_refused(option: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(**option)


def test_edge_counts() -> None:
    assert make().suggest([], [], set(), 0, draw_index=0) == []
    empty = make(Space.from_matrix({}))
    only = empty.suggest([], [], set(), 3, draw_index=0)
    assert [s.params for s in only] == [{}]
    assert empty.suggest([], [], {only[0].params_hash}, 1, draw_index=1) == []


# -- it optimises -------------------------------------------------------------------------


def test_branin_is_solved_in_30_trials() -> None:
    optimizer = make(BRANIN_SPACE, seed=0, maximize=False, n_initial_trials=5)
    observations: list[Observation] = []
    taken: set[str] = set()
    for i in range(30):
        (s,) = optimizer.suggest(observations, [], taken, 1, draw_index=i)
        assert json.loads(json.dumps(s.reason)) == s.reason
        assert s.reason["phase"] == ("initial" if i < 5 else "model")
        assert s.reason["n_observations"] == i and s.reason["n_pending"] == 0
        if i >= 5:
            assert s.reason["acquisition"] == "ucb"
            assert isinstance(s.reason["acquisition_value"], float)
            assert math.isfinite(s.reason["predicted_mean"])
            assert s.reason["predicted_std"] >= 0
        observations.append(Observation(s.params, branin(**s.params)))
        taken.add(s.params_hash)
    regret = min(o.value for o in observations) - BRANIN_MIN
    assert regret < 0.5


@pytest.mark.parametrize("maximize", [True, False])
def test_either_direction_climbs_and_reports_in_metric_units(maximize: bool) -> None:
    space = Space.from_matrix({"x": {"uniform": {"low": -2.0, "high": 2.0}}})
    optimizer = make(space, maximize=maximize, n_initial_trials=3, acquisition="ei")
    sign = 1.0 if maximize else -1.0
    observations: list[Observation] = []
    for i in range(10):
        (s,) = optimizer.suggest(observations, [], set(), 1, draw_index=i)
        observations.append(Observation(s.params, sign * (3.0 - (s.params["x"] - 0.7) ** 2)))
    best = max(observations, key=lambda o: sign * o.value)
    assert abs(best.params["x"] - 0.7) < 0.05
    # The last prediction is of the metric as reported (near +3 or -3), not standardised.
    assert s.reason["predicted_mean"] == pytest.approx(observations[-1].value, abs=0.01)
    assert 0 <= s.reason["predicted_std"] < 0.1


def test_local_searches_start_at_the_best_candidate_then_at_distinct_likely_ones() -> None:
    points = np.array([[0.1], [0.2], [0.2], [0.3], [0.9]])
    values = np.array([-50.0, 0.0, 0.0, -0.5, -1.0])
    rng = np.random.default_rng(0)
    for _ in range(20):
        chosen = _starts(points, values, 3, rng)
        assert chosen[0] == 1
        assert len(chosen) == 3 and len(set(chosen)) == 3
        assert 2 not in chosen  # the same point as the best one
    # Far below the best (exp(-50)), the first point is practically never a start.
    picks = Counter(i for _ in range(200) for i in _starts(points, values, 2, rng)[1:])
    assert picks[0] == 0 and picks[3] > picks[4] > 0
    assert _starts(points, values, 0, rng) == []


def test_a_pick_in_a_mixed_space_tops_its_hill_along_the_continuous_columns() -> None:
    """The discrete value is snapped before the continuous ones are settled, not after.

    The best `x` depends on `k`; a climb through the relaxed cube stops at the `x`
    of a `k` between the allowed values, and snapping `k` alone leaves `x` off the
    top of the acquisition for the `k` it snapped to.
    """
    space = Space.from_matrix(
        {"x": {"uniform": {"low": 0.0, "high": 1.0}}, "k": {"values": [0, 1, 2, 3]}}
    )

    def f(params: dict[str, Any]) -> float:
        return (params["x"] - 0.25 * params["k"] - 0.1) ** 2 + 0.3 * (params["k"] - 1.4) ** 2

    optimizer = make(space, acquisition="ei", eps=0.0, n_initial_trials=8)
    seen: list[tuple[Any, float, Any]] = []
    maximise = optimizer._maximise

    def spy(posterior: Any, best: float, *args: Any) -> Any:
        pick = maximise(posterior, best, *args)
        seen.append((posterior, best, pick))
        return pick

    optimizer._maximise = spy  # type: ignore[method-assign]
    observations: list[Observation] = []
    taken: set[str] = set()
    for i in range(16):
        (s,) = optimizer.suggest(observations, [], taken, 1, draw_index=i)
        observations.append(Observation(s.params, f(s.params)))
        taken.add(s.params_hash)
    assert len(seen) == 8
    discrete = optimizer.encoder.is_discrete_column
    assert discrete.tolist() == [False, True]
    for posterior, best, pick in seen:
        again = optimizer._climb(posterior, best, pick.point, fixed=discrete)
        assert again[1] == pick.point[1]  # the fixed column stays where it was
        (value,), _, _ = optimizer._score(posterior, again[None, :], best)
        assert value <= pick.value + 1e-3 * max(1.0, abs(pick.value))

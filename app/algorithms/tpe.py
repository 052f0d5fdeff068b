"""Tree-structured Parzen Estimator (TPE) over a flat search space.

Reference:
    Bergstra, Bardenet, Bengio and Kégl, "Algorithms for Hyper-Parameter
    Optimization", NeurIPS 2011, section 4.

TPE models p(x | y) instead of p(y | x). The observations are split at a
quantile of the metric: the best ones form the "good" set, the rest the "bad"
set. A density is fitted to each set, l(x) to the good and g(x) to the bad, and
the next point is the candidate drawn from l that maximises l(x) / g(x), which
the paper shows maximises expected improvement.

Two forms of the densities (the space is flat: no conditional params):
- multivariate (the default): one joint Parzen estimator over all params, a
  kernel per observation in the product space (the product of that observation's
  kernels in each param) plus the prior's, so that a good pair of values is told
  apart from a good value of each param taken separately; each continuous
  kernel has the bandwidth the univariate rule gives it, a categorical kernel
  keeps 1 - CATEGORICAL_SMOOTHING on its observed value;
- univariate (`multivariate=False`, the paper's): each param gets its own pair
  of densities and the log ratio of a configuration is the sum over params.

Choices this module makes where the paper leaves room:
- continuous params are modelled in log scale for log kinds, raw otherwise; normal
  kinds are truncated at loc +- 4 scale, uniform kinds at their bounds;
- the prior kernel is centred on the prior (the interval's middle, or loc) with
  the interval's width (or the scale) as bandwidth, and weight `prior_weight`
  against 1 per observation;
- a quantized value is scored by the mass of its rounding bucket;
- lists of numbers (`values` of numbers only, `range`, `linspace`, `logspace`,
  `geomspace`) are modelled by rank, as a continuous axis over the sorted values
  whose value i is the bucket [i - 0.5, i + 0.5], so neighbours share mass; other
  discrete kinds (categories, `pvalues`) are unordered categoricals;
- a kernel's bandwidth is the distance to its farther neighbour among the
  observations, the outermost ones measured to their one neighbour, not to the
  interval's edge (see `_Parzen.fit`);
- the good set is the best ceil(gamma * n) observations, at least one, with
  gamma 0.12 by default and 0.1 while running trials or earlier picks of a
  batch are lied about (the paper uses 0.25; see DEFAULT_GAMMA).

The object keeps no state: `TPE.suggest` is a pure function of the constructor's
arguments and of what it is given. All randomness comes from numpy Generators
seeded from (seed, draw index, ...), never from global state.
"""

import math
import numbers
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from app.algorithms.base import Observation, Suggestion
from app.algorithms.space import Param, Space, params_hash, permuted_index

UNIFORM_KINDS = frozenset({"uniform", "quniform", "loguniform", "qloguniform"})
LOG_KINDS = frozenset({"loguniform", "qloguniform", "lognormal", "qlognormal"})
DISCRETE_KINDS = frozenset({"values", "pvalues", "range", "linspace", "logspace", "geomspace"})

# Normal-like params are unbounded; the model truncates them at loc +- 4 scale so
# each Gaussian has finite bounds and neighbour distances, losing only ~6e-5 of
# the prior's mass.
NORMAL_SPAN = 4.0
# Bergstra's floor on bandwidths: prior_sigma / min(100, kernels). The cap of 100
# stops kernels from shrinking to spikes once many observations pile up.
MAX_BANDWIDTH_SHRINK = 100.0
# Rounds of candidates drawn from l(x) before falling back to prior draws; in a
# small discrete space l concentrates on a few, possibly taken, configurations.
MODEL_ROUNDS = 4
# The good set's share of the observations. The paper's 0.25 keeps 15 of 60 points
# good, too many to say where the optimum is in 6 dimensions. Optuna's 0.1 refines
# worse in few dimensions (bench/inprocess.py, 600 seeds, 60 trials, one worker:
# Branin 0.104 against 0.074 with 0.12), 0.15 leaves more 6-D runs stalled (Hartmann6:
# 38 of 600 above regret 1, 0.12: 29). With trials running in parallel the lies
# already spread a batch and a wider l(x) spreads it further: at 4 workers 0.15 lost
# to 0.1 (Hartmann6 0.403 against 0.369, mixed 0.374 against 0.336), so the share
# drops to BATCH_GAMMA while any lie is in g(x).
DEFAULT_GAMMA = 0.12
BATCH_GAMMA = 0.1
# TODO(hpo): on the mixed function more runs stall above regret 1 than with Optuna's
# TPE (1200 seeds in-process: 135 against 90 with one worker, 159 against 129 with
# four) though the medians are level or better; the cause is not found.
PRIOR_ATTEMPTS = 64
SCAN_CHUNK = 256
# A last-resort scan of an all-discrete space looks at this many cells at most,
# so a huge, nearly exhausted weighted space cannot stall a request.
MAX_SCAN = 1 << 20
# Densities are floored here so logs stay finite (and reasons stay valid JSON).
TINY = 1e-300
LOG_TINY = math.log(TINY)
# Part of every seed, which keeps TPE's streams apart from Space.sample's.
STREAM_TAG = 0x7E5
JOINT_TAG = 0x101  # the stream that picks the joint estimator's components
# A categorical kernel of the joint estimator keeps 1 - this on its observed value
# and spreads this as the prior: another value is unlikely, never impossible.
CATEGORICAL_SMOOTHING = 0.2


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is int:  # the common case, without the ABC machinery
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _logsumexp(terms: np.ndarray) -> np.ndarray:
    """log(sum(exp(terms), axis=1)), shifted by the row maximum so nothing overflows."""
    top = terms.max(axis=1)
    return top + np.log(np.exp(terms - top[:, None]).sum(axis=1))


# --------------------------------------------------------------------------- Parzen mixtures


def _gauss_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Phi(hi) - Phi(lo) for standardised bounds lo <= hi, accurate in both tails."""
    # In the upper tail both CDFs round to 1; the survival function keeps the digits.
    upper = lo > 0
    direct = ndtr(hi) - ndtr(lo)
    mirrored = ndtr(-lo) - ndtr(-hi)
    return np.where(upper, mirrored, direct)


@dataclass(frozen=True)
class _Parzen:
    """A weighted mixture of Gaussians, each truncated to [low, high]."""

    mus: np.ndarray
    sigmas: np.ndarray
    weights: np.ndarray  # sums to 1
    low: float
    high: float
    log_norm: np.ndarray  # log weight - log truncated mass, per component

    @classmethod
    def fit(
        cls,
        points: np.ndarray,
        *,
        low: float,
        high: float,
        prior_mu: float,
        prior_sigma: float,
        prior_weight: float,
    ) -> "_Parzen":
        """Kernels on `points` plus one prior kernel, bandwidths by neighbour distance.

        Each kernel's bandwidth is the larger of the distances to its left and right
        neighbours among the points; the lowest and the highest point have one
        neighbour and take that distance (with a single point, the interval bounds
        stand in), clipped to [prior_sigma / min(100, n + 2), prior_sigma]. The
        prior kernel keeps prior_sigma, so l and g never forget the prior entirely
        (paper, section 4).

        Measuring the outermost points against the interval bounds, as the paper's
        rule can be read, gives them kernels as wide as the gap to the edge: with
        a good set of a few points per dimension that spreads l(x) over the whole
        cube. Bounded by their own neighbour they stay where the good points are
        (bench/quality.py, 40 seeds in-process: mixed 0.55 -> 0.38 at 60 trials).

        Points that share a value (a list or a quantized param tried more than
        once) all take the floor: the value is a mode of the set. The rule by
        neighbours alone gives the copies 0 and, arbitrarily, the first and the
        last copy the gaps on either side; which copies those are used to depend
        on the order of the points.
        """
        n = len(points)
        order = np.argsort(points, kind="stable")
        edges = np.concatenate(([low], points[order], [high]))
        left, right = np.diff(edges)[:-1], np.diff(edges)[1:]
        # In sorted order a copy sits next to another: a gap of 0 to a neighbouring
        # point (not to a bound, which a point may sit on alone).
        between = np.diff(edges[1:-1]) == 0.0
        shared = np.append(between, False) | np.insert(between, 0, False)
        if n >= 2:
            left[0], right[-1] = 0.0, 0.0  # the outermost points: their one neighbour
        widths = np.empty(n)
        widths[order] = np.where(shared, 0.0, np.maximum(left, right))
        floor = prior_sigma / min(MAX_BANDWIDTH_SHRINK, n + 2.0)
        sigmas = np.append(np.clip(widths, floor, prior_sigma), prior_sigma)
        mus = np.append(points, prior_mu)
        weights = np.append(np.ones(n), prior_weight)
        weights /= weights.sum()
        mass = _gauss_mass((low - mus) / sigmas, (high - mus) / sigmas)
        log_norm = np.log(weights) - np.log(np.maximum(mass, TINY))
        return cls(mus, sigmas, weights, low, high, log_norm)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws by picking a kernel, then inverting its truncated CDF."""
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        mu, sigma = self.mus[k], self.sigmas[k]
        # Every centre lies inside [low, high], so alpha <= 0 <= beta and the plain
        # CDF has no cancellation problem at either end.
        a = ndtr((self.low - mu) / sigma)
        b = ndtr((self.high - mu) / sigma)
        z = mu + sigma * ndtri(a + rng.uniform(size=n) * (b - a))
        return np.clip(z, self.low, self.high)

    def log_pdf(self, z: np.ndarray) -> np.ndarray:
        """Log density at each of `z` (model scale)."""
        t = (z[:, None] - self.mus) / self.sigmas
        terms = -0.5 * t * t - np.log(self.sigmas) - 0.5 * math.log(2 * math.pi) + self.log_norm
        return _logsumexp(terms)

    def log_interval(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Log probability of each interval [lo, hi] (model scale, within the bounds)."""
        mass = _gauss_mass(
            (lo[:, None] - self.mus) / self.sigmas, (hi[:, None] - self.mus) / self.sigmas
        )
        return _logsumexp(np.log(np.maximum(mass, TINY)) + self.log_norm)


@dataclass(frozen=True)
class _Kernels:
    """One dimension of a joint Parzen estimator: a kernel per component, in row order.

    Continuous: component k is a Gaussian (mus[k], sigmas[k]) truncated to [low, high],
    log_mass[k] the log of its mass there. Categorical: component k puts 1 - smooth
    on value centers[k] and spreads smooth as the prior; a center of -1 is the prior
    itself. The last component is always the prior's.
    """

    mus: np.ndarray
    sigmas: np.ndarray
    log_mass: np.ndarray
    low: float
    high: float
    centers: np.ndarray | None = None
    prior: np.ndarray | None = None
    smooth: float = 0.0

    def sample(self, rng: np.random.Generator, comps: np.ndarray) -> np.ndarray:
        """One draw per entry of `comps` from that component (model scale or value index)."""
        if self.centers is not None:
            assert self.prior is not None
            centers = self.centers[comps]
            spread = rng.choice(len(self.prior), size=len(comps), p=self.prior)
            keep = (centers >= 0) & (rng.uniform(size=len(comps)) >= self.smooth)
            return np.where(keep, centers, spread)
        mu, sigma = self.mus[comps], self.sigmas[comps]
        a = ndtr((self.low - mu) / sigma)
        b = ndtr((self.high - mu) / sigma)
        z = mu + sigma * ndtri(a + rng.uniform(size=len(comps)) * (b - a))
        return np.clip(z, self.low, self.high)

    def log_point(self, z: np.ndarray) -> np.ndarray:
        """(candidates, components) log density of each continuous kernel at each z."""
        t = (z[:, None] - self.mus) / self.sigmas
        return -0.5 * t * t - np.log(self.sigmas) - 0.5 * math.log(2 * math.pi) - self.log_mass

    def log_bucket(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(candidates, components) log mass of each kernel on each interval [lo, hi]."""
        mass = _gauss_mass(
            (lo[:, None] - self.mus) / self.sigmas, (hi[:, None] - self.mus) / self.sigmas
        )
        return np.log(np.maximum(mass, TINY)) - self.log_mass

    def log_value(self, idx: np.ndarray) -> np.ndarray:
        """(candidates, components) log probability of each value index (-1: unusable)."""
        assert self.centers is not None and self.prior is not None
        safe = np.maximum(idx, 0)
        p = self.smooth * self.prior[safe][:, None] + (1.0 - self.smooth) * (
            safe[:, None] == self.centers[None, :]
        )
        p = np.where(self.centers[None, :] < 0, self.prior[safe][:, None], p)
        return np.where(idx[:, None] < 0, LOG_TINY, np.log(np.maximum(p, TINY)))


@dataclass(frozen=True)
class _Joint:
    """A Parzen estimator over the product space: one kernel per observation, plus the prior."""

    log_weights: np.ndarray
    dims: list[_Kernels]


@dataclass(frozen=True)
class _Categorical:
    """A smoothed categorical over a param's values: probabilities and their logs."""

    probs: np.ndarray
    log_probs: np.ndarray


# --------------------------------------------------------------------------- axes


class _ContinuousAxis:
    """A continuous param in the scale TPE models it in: log for log kinds, else raw."""

    def __init__(self, param: Param) -> None:
        args = param.args
        self.param = param
        self.log = param.kind in LOG_KINDS
        self.q = args["q"] if param.is_quantized else None
        if param.kind in UNIFORM_KINDS:
            # loguniform bounds are already natural-log exponents.
            self.low, self.high = float(args["low"]), float(args["high"])
            self.prior_mu = 0.5 * (self.low + self.high)
            # A Gaussian as wide as the interval, truncated to it, is nearly flat
            # (its edges are 12% below its centre): it stands in for the uniform prior.
            self.prior_sigma = self.high - self.low
            self.bounds: tuple[Any, ...] = (args["low"], args["high"])
        else:
            loc, scale = float(args["loc"]), float(args["scale"])
            self.low, self.high = loc - NORMAL_SPAN * scale, loc + NORMAL_SPAN * scale
            self.prior_mu, self.prior_sigma = loc, scale
            self.bounds = ()  # as in Param._draw: q alone decides int or float

    def encode(self, value: Any) -> float:
        """A param value in model scale, clipped to the bounds; NaN when unusable."""
        if not _is_number(value) or not math.isfinite(value):
            return math.nan
        x = float(value)
        if self.log:
            # A quantized log value may round down to 0: it sits at the lower bound.
            x = math.log(x) if x > 0 else self.low
        return min(max(x, self.low), self.high)

    def decode(self, z: float) -> Any:
        x = math.exp(z) if self.log else z
        if self.q is None:
            return float(x)
        return Param._quantize(x, self.q, *self.bounds)

    def fit(self, points: np.ndarray, prior_weight: float) -> _Parzen:
        return _Parzen.fit(
            points,
            low=self.low,
            high=self.high,
            prior_mu=self.prior_mu,
            prior_sigma=self.prior_sigma,
            prior_weight=prior_weight,
        )

    def draw(self, model: _Parzen, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.decode(z) for z in model.sample(rng, n)]

    def kernels(self, column: np.ndarray, prior_weight: float) -> _Kernels:
        """Per-row kernels with the univariate bandwidths; a row without a value gets the prior."""
        known = ~np.isnan(column)
        mus = np.full(len(column) + 1, self.prior_mu)
        sigmas = np.full(len(column) + 1, self.prior_sigma)
        rows = np.flatnonzero(known)
        parzen = self.fit(column[known], prior_weight)
        mus[rows], sigmas[rows] = parzen.mus[:-1], parzen.sigmas[:-1]
        mass = _gauss_mass((self.low - mus) / sigmas, (self.high - mus) / sigmas)
        return _Kernels(mus, sigmas, np.log(np.maximum(mass, TINY)), self.low, self.high)

    def joint_draw(self, kernels: _Kernels, rng: np.random.Generator, comps: np.ndarray) -> list:
        return [self.decode(z) for z in kernels.sample(rng, comps)]

    def joint_log(self, kernels: _Kernels, values: Sequence[Any]) -> np.ndarray:
        if self.q is None:
            z = np.array([self.encode(v) for v in values])
            missing = np.isnan(z)
            out = kernels.log_point(np.where(missing, self.low, z))
            return np.where(missing[:, None], LOG_TINY, out)
        lo = np.empty(len(values))
        hi = np.empty(len(values))
        for i, v in enumerate(values):
            lo[i], hi[i] = self._bucket(v)
        out = kernels.log_bucket(lo, hi)
        return np.where((hi > lo)[:, None], out, LOG_TINY)

    def log_density(self, model: _Parzen, values: Sequence[Any]) -> np.ndarray:
        if self.q is None:
            z = np.array([self.encode(v) for v in values])
            missing = np.isnan(z)
            out = model.log_pdf(np.where(missing, self.low, z))
            return np.where(missing, LOG_TINY, out)
        # A quantized value stands for every continuous draw that rounds to it, so
        # its weight is the mass of that bucket, not a density at one point.
        lo = np.empty(len(values))
        hi = np.empty(len(values))
        for i, v in enumerate(values):
            lo[i], hi[i] = self._bucket(v)
        out = model.log_interval(lo, hi)
        return np.where(hi > lo, out, LOG_TINY)

    def _bucket(self, value: Any) -> tuple[float, float]:
        if not _is_number(value) or not math.isfinite(value):
            return self.low, self.low
        assert self.q is not None  # only quantized params have buckets
        half = 0.5 * float(self.q)
        lo, hi = float(value) - half, float(value) + half
        if self.log:
            lo = math.log(lo) if lo > 0 else -math.inf
            hi = math.log(hi) if hi > 0 else -math.inf
        return min(max(lo, self.low), self.high), min(max(hi, self.low), self.high)


class _OrdinalAxis(_ContinuousAxis):
    """A list of numbers, modelled by rank: value i of the sorted distinct values is the
    bucket [i - 0.5, i + 0.5] of a continuous axis, so that neighbouring values share
    their kernels' mass (a learning rate of 1e-3 says something about 3e-3)."""

    def __init__(self, param: Param) -> None:  # noqa: D107 - the class says it
        numeric: dict[float, Any] = {}
        for v in param.values:
            numeric.setdefault(float(v), v)  # the first of equal values speaks for them
        self.param = param
        self.keys = sorted(numeric)
        self.choices = [numeric[k] for k in self.keys]
        self.rank = {k: i for i, k in enumerate(self.keys)}
        self.log = False
        self.q = 1
        self.low, self.high = -0.5, len(self.keys) - 0.5
        self.prior_mu = 0.5 * (self.low + self.high)
        self.prior_sigma = self.high - self.low
        self.bounds = ()

    def encode(self, value: Any) -> float:
        if not _is_number(value) or not math.isfinite(value):
            return math.nan
        i = self.rank.get(float(value))
        return math.nan if i is None else float(i)

    def decode(self, z: float) -> Any:
        return self.choices[min(max(round(z), 0), len(self.choices) - 1)]

    def _bucket(self, value: Any) -> tuple[float, float]:
        i = self.encode(value)
        if math.isnan(i):
            return self.low, self.low
        return i - 0.5, i + 0.5


def _value_key(value: Any) -> Hashable:
    # 1 and 1.0 are one value (JSON round trips may turn one into the other), but
    # True is not 1: a matrix may list both.
    if isinstance(value, bool):
        return ("bool", value)
    if _is_number(value):
        return ("number", float(value))
    return (type(value).__name__, value)


class _CategoricalAxis:
    """A param with a finite list of values, modelled as a smoothed categorical."""

    def __init__(self, param: Param) -> None:
        self.param = param
        self.values = param.values
        k = len(self.values)
        prior = param.probabilities
        self.prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=float)
        self.index: dict[Hashable, int] = {}
        for i, v in enumerate(self.values):
            self.index.setdefault(_value_key(v), i)  # a repeated value counts for its first

    def encode(self, value: Any) -> float:
        try:
            i = self.index.get(_value_key(value))
        except TypeError:  # unhashable: a list, say; not one of our values
            return math.nan
        return math.nan if i is None else float(i)

    def fit(self, points: np.ndarray, prior_weight: float) -> _Categorical:
        # Counts plus prior_weight pseudo-observations spread as the prior: a value
        # no good trial used keeps some chance, in proportion to its prior.
        counts = np.bincount(points.astype(np.int64), minlength=len(self.values))
        p = counts + prior_weight * self.prior
        p = p / p.sum()
        return _Categorical(p, np.log(np.maximum(p, TINY)))

    def draw(self, model: _Categorical, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.values[i] for i in rng.choice(len(self.values), size=n, p=model.probs)]

    def kernels(self, column: np.ndarray, prior_weight: float) -> _Kernels:
        """Per-row kernels on each observed value; a row without a value gets the prior."""
        del prior_weight  # the prior's weight is the joint mixture's business
        centers = np.append(np.where(np.isnan(column), -1, column), -1).astype(np.int64)
        empty = np.zeros(len(centers))
        return _Kernels(empty, empty, empty, 0.0, 0.0, centers, self.prior, CATEGORICAL_SMOOTHING)

    def joint_draw(self, kernels: _Kernels, rng: np.random.Generator, comps: np.ndarray) -> list:
        return [self.values[int(i)] for i in kernels.sample(rng, comps)]

    def joint_log(self, kernels: _Kernels, values: Sequence[Any]) -> np.ndarray:
        idx = np.array([self.encode(v) for v in values])
        return kernels.log_value(np.where(np.isnan(idx), -1, idx).astype(np.int64))

    def log_density(self, model: _Categorical, values: Sequence[Any]) -> np.ndarray:
        idx = [self.encode(v) for v in values]
        return np.array([LOG_TINY if math.isnan(i) else model.log_probs[int(i)] for i in idx])


_Axis = _ContinuousAxis | _OrdinalAxis | _CategoricalAxis


def _axis(param: Param) -> _Axis:
    args = param.args
    if isinstance(args, Mapping) and args.get("size") is not None:
        # TPE models one scalar per param; a list-valued draw has no density here.
        raise ValueError(
            f"TPE cannot search {param.name!r}: `size` (list-valued draws) is not supported"
        )
    if param.kind in DISCRETE_KINDS:
        values = param.values
        if param.kind != "pvalues" and values and all(_is_number(v) for v in values):
            return _OrdinalAxis(param)
        return _CategoricalAxis(param)
    if param.is_continuous:
        return _ContinuousAxis(param)
    raise ValueError(f"unknown matrix option kind {param.kind!r} for {param.name!r}")


# --------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class _Models:
    """The fitted l(x) and g(x) of every param, in the space's param order."""

    good: list[Any]
    bad: list[Any]


class TPE:
    """Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011) over a flat `Space`.

    The first `n_initial_trials` draws (and any draw while fewer than two metrics
    are known) are the space's own random draws. After that each draw splits the
    observations into the best ceil(gamma * n) ("good", at least one) and the rest
    ("bad"), fits a Parzen estimator l(x) to the good and g(x) to the bad (jointly
    over all params, or per param with `multivariate=False`), draws `n_candidates`
    candidates from l and keeps the free one with the largest log l(x) - log g(x).

    With `constant_liar`, running trials and points chosen earlier in the same batch
    join the bad set: a pessimistic lie about their outcome that pushes parallel
    workers away from points already being evaluated.
    """

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        maximize: bool,
        n_initial_trials: int = 10,
        n_candidates: int = 24,
        gamma: float = DEFAULT_GAMMA,
        batch_gamma: float = BATCH_GAMMA,
        prior_weight: float = 1.0,
        constant_liar: bool = True,
        multivariate: bool = True,
    ) -> None:
        """Check the settings and prepare one model axis per param.

        Args:
            space: The search space; no param may use `size`.
            seed: Seeds every draw, together with the draw index.
            maximize: True when a larger metric is better.
            n_initial_trials: Random draws before the model takes over, >= 0.
            n_candidates: Candidates drawn from l(x) per suggestion, >= 1.
            gamma: Fraction of observations in the good set, in (0, 1].
            batch_gamma: The fraction for draws whose g(x) holds lies (running
                trials, picks made earlier in the same call), in (0, 1].
            prior_weight: Weight of the prior in every density (one pseudo-
                observation per unit), > 0.
            constant_liar: Count running and same-batch points as bad observations.
            multivariate: One joint density over all params (a kernel per observation
                in the product space) rather than one independent density per param.

        Raises:
            ValueError: A setting out of range, or a param with `size` (named).
        """
        if isinstance(n_initial_trials, bool) or not isinstance(n_initial_trials, int):
            raise ValueError(f"n_initial_trials must be an integer >= 0, got {n_initial_trials!r}")
        if n_initial_trials < 0:
            raise ValueError(f"n_initial_trials must be an integer >= 0, got {n_initial_trials!r}")
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"n_candidates must be an integer >= 1, got {n_candidates!r}")
        for name, share in (("gamma", gamma), ("batch_gamma", batch_gamma)):
            if not _is_number(share) or not 0 < share <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {share!r}")
        if not _is_number(prior_weight) or not (0 < prior_weight < math.inf):
            raise ValueError(f"prior_weight must be a finite number > 0, got {prior_weight!r}")
        self._space = space
        self._axes: list[_Axis] = [_axis(p) for p in space.params]
        self._names = [p.name for p in space.params]
        self._seed = int(seed)
        self._maximize = bool(maximize)
        self._n_initial = n_initial_trials
        self._n_candidates = n_candidates
        self._gamma = float(gamma)
        self._batch_gamma = float(batch_gamma)
        self._prior_weight = float(prior_weight)
        self._constant_liar = bool(constant_liar)
        self._multivariate = bool(multivariate)

    def n_good(self, n: int, *, lying: bool = False) -> int:
        """The size of the good set for `n` observations: ceil(gamma * n), in [1, n].

        `lying`: g(x) holds lies (running trials, earlier picks of the batch), and
        `batch_gamma` is the share.
        """
        share = self._batch_gamma if lying else self._gamma
        # The epsilon keeps 0.55 * 100 = 55.00000000000001 from rounding up to 56.
        return min(n, max(1, math.ceil(share * n - 1e-9)))

    def suggest(
        self,
        observations: Sequence[Observation],
        pending: Sequence[dict[str, Any]],
        taken: Collection[str],
        count: int,
        *,
        draw_index: int,
    ) -> list[Suggestion]:
        """Up to `count` new configurations, best first by the TPE criterion.

        Reference: Bergstra et al. 2011, "Algorithms for Hyper-Parameter
        Optimization", section 4 (TPE) and 4.1 (the EI criterion l(x) / g(x)).

        Args:
            observations: Finished trials with a metric; NaN values are ignored.
            pending: The params of running trials.
            taken: params_hash of every configuration the group already has.
            count: How many suggestions are wanted, >= 0.
            draw_index: How many trials the group has proposed so far; suggestion i
                of this call is draw `draw_index + i`.

        Returns:
            At most `count` suggestions, none in `taken` and no two alike; fewer
            only when no free configuration can be found (an exhausted space).

        Raises:
            ValueError: A negative `count` or `draw_index`.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if draw_index < 0:
            raise ValueError(f"draw_index must be >= 0, got {draw_index}")
        usable = [o for o in observations if not math.isnan(o.value)]
        n_obs = len(usable)
        chosen: list[Suggestion] = []
        chosen_hashes: set[str] = set()
        # l(x) depends on the observations and on whether g(x) holds lies (running
        # trials, picks made earlier in the batch), which call for the smaller good
        # set of `batch_gamma`: fitted at most once each way.
        fitted: dict[bool, tuple[list[Any], np.ndarray, int]] = {}
        lies = self._encode(pending if self._constant_liar else [])

        def free(h: str) -> bool:
            return h not in taken and h not in chosen_hashes

        for i in range(count):
            index = draw_index + i
            log_ratio: float | None = None
            n_lies = 0
            split: int | None = None
            if index < self._n_initial or n_obs < 2:
                params = self._initial(index, free)
            else:
                # g(x) is refitted per draw: each point chosen earlier in the batch
                # is one more lie.
                earlier = self._encode([s.params for s in chosen] if self._constant_liar else [])
                n_lies = len(lies) + len(earlier)
                lying = n_lies > 0
                if lying not in fitted:
                    fitted[lying] = self._fit_good(usable, lying=lying)
                good, bad_observed, split = fitted[lying]
                bad = self._fit(np.vstack([bad_observed, lies, earlier]))
                picked = self._model(index, _Models(good=good, bad=bad), free)
                params, log_ratio = (None, None) if picked is None else picked
            if params is None:
                break  # nothing free is left: the space is exhausted
            reason = {
                "phase": "initial" if split is None else "model",
                "log_ratio": log_ratio,
                "n_observations": n_obs,
                "n_pending": len(pending),
                "pending_strategy": "constant_liar" if n_lies else None,
                "gamma_split": split,
            }
            h = params_hash(params)
            chosen.append(Suggestion(params=params, params_hash=h, reason=reason))
            chosen_hashes.add(h)
        return chosen

    # -- the model ---------------------------------------------------------------

    def _encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Configurations as a (n, params) matrix in model scale; NaN where unusable."""
        out = np.full((len(configs), len(self._axes)), np.nan)
        for r, config in enumerate(configs):
            for j, (name, axis) in enumerate(zip(self._names, self._axes, strict=True)):
                if name in config:
                    out[r, j] = axis.encode(config[name])
        return out

    def _fit(self, matrix: np.ndarray) -> Any:
        """The density of the rows of `matrix`: joint, or one per param (univariate)."""
        if self._multivariate:
            weights = np.append(np.ones(len(matrix)), self._prior_weight)
            return _Joint(
                np.log(weights / weights.sum()),
                [
                    axis.kernels(matrix[:, j], self._prior_weight)
                    for j, axis in enumerate(self._axes)
                ],
            )
        return [
            axis.fit(_column(matrix, j), self._prior_weight) for j, axis in enumerate(self._axes)
        ]

    def _joint_log(self, joint: _Joint, columns: list[list[Any]], n: int) -> np.ndarray:
        terms = np.tile(joint.log_weights, (n, 1))
        for axis, kernels, values in zip(self._axes, joint.dims, columns, strict=True):
            terms += axis.joint_log(kernels, values)
        return _logsumexp(terms)

    def _draw(self, good: Any, index: int, round_: int) -> list[list[Any]]:
        """`n_candidates` draws from l(x), as one column of values per param."""
        if not self._multivariate:
            # One stream per param: adding a param does not change the others' draws.
            return [
                axis.draw(model, self._rng(index, j, round_), self._n_candidates)
                for j, (axis, model) in enumerate(zip(self._axes, good, strict=True))
            ]
        weights = np.exp(good.log_weights)
        comps = self._rng(index, JOINT_TAG, round_).choice(
            len(weights), size=self._n_candidates, p=weights / weights.sum()
        )
        return [
            axis.joint_draw(kernels, self._rng(index, j, round_), comps)
            for j, (axis, kernels) in enumerate(zip(self._axes, good.dims, strict=True))
        ]

    def _fit_good(
        self, usable: Sequence[Observation], *, lying: bool
    ) -> tuple[list[Any], np.ndarray, int]:
        """l(x) of every param, the bad observations (model scale) and the split size."""
        losses = np.array([-o.value if self._maximize else o.value for o in usable], dtype=float)
        # Stable: ties keep the order the observations came in, so the split is
        # a function of the input alone.
        order = np.argsort(losses, kind="stable")
        n_good = self.n_good(len(usable), lying=lying)
        matrix = self._encode([o.params for o in usable])
        return self._fit(matrix[order[:n_good]]), matrix[order[n_good:]], n_good

    def _scores(self, models: _Models, columns: list[list[Any]], n: int) -> np.ndarray:
        if self._multivariate:
            return self._joint_log(models.good, columns, n) - self._joint_log(
                models.bad, columns, n
            )
        total = np.zeros(n)
        for axis, l_model, g_model, values in zip(
            self._axes, models.good, models.bad, columns, strict=True
        ):
            total += axis.log_density(l_model, values) - axis.log_density(g_model, values)
        return total

    def _rng(self, index: int, *key: int) -> np.random.Generator:
        return np.random.default_rng([self._seed % 2**63, STREAM_TAG, index, *key])

    def _model(
        self, index: int, models: _Models, free: Callable[[str], bool]
    ) -> tuple[dict[str, Any], float] | None:
        for round_ in range(MODEL_ROUNDS):
            columns = self._draw(models.good, index, round_)
            configs = [
                {name: column[c] for name, column in zip(self._names, columns, strict=True)}
                for c in range(self._n_candidates)
            ]
            picked = self._best_free(configs, self._scores(models, columns, len(configs)), free)
            if picked is not None:
                return picked
        # l(x) keeps proposing taken points (a small discrete space, mostly used):
        # widen to the prior, still preferring the best ratio.
        prior = [self._space.sample(self._seed, index, a) for a in range(PRIOR_ATTEMPTS)]
        picked = self._best_free(
            prior, self._scores(models, _columns(prior, self._names), len(prior)), free
        )
        if picked is not None:
            return picked
        for cells in self._scan():
            picked = self._best_free(
                cells, self._scores(models, _columns(cells, self._names), len(cells)), free
            )
            if picked is not None:
                return picked
        return None

    def _initial(self, index: int, free: Callable[[str], bool]) -> dict[str, Any] | None:
        for attempt in range(PRIOR_ATTEMPTS):
            params = self._space.sample(self._seed, index, attempt)
            if free(params_hash(params)):
                return params
        for cells in self._scan():
            for cell in cells:
                if free(params_hash(cell)):
                    return cell
        return None

    @staticmethod
    def _best_free(
        configs: Sequence[dict[str, Any]], scores: np.ndarray, free: Callable[[str], bool]
    ) -> tuple[dict[str, Any], float] | None:
        for k in np.argsort(-scores, kind="stable"):
            if free(params_hash(configs[k])):
                return configs[k], float(scores[k])
        return None

    def _scan(self) -> Iterator[list[dict[str, Any]]]:
        """Chunks of an all-discrete space's cells in a seeded order (last resort).

        Cells holding a value of probability zero are left out: random draws never
        produce them, so neither does the fallback.
        """
        size = self._space.size
        if size is None:
            return  # quantized continuous params: no list of cells to fall back on
        impossible = [
            {
                _value_key(v)
                for v, p in zip(param.values, param.probabilities, strict=True)
                if p <= 0
            }
            if param.kind == "pvalues"
            else set()
            for param in self._space.params
        ]
        limit = min(size, MAX_SCAN)
        for start in range(0, limit, SCAN_CHUNK):
            cells = [
                self._space.cell(permuted_index(j, size, self._seed))
                for j in range(start, min(limit, start + SCAN_CHUNK))
            ]
            yield [
                cell
                for cell in cells
                if not any(
                    _value_key(cell[name]) in bad
                    for name, bad in zip(self._names, impossible, strict=True)
                    if bad
                )
            ]


def _column(matrix: np.ndarray, j: int) -> np.ndarray:
    col = matrix[:, j]
    return col[~np.isnan(col)]


def _columns(configs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    return [[c.get(name) for c in configs] for name in names]

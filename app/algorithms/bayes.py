"""Bayesian optimisation with a Gaussian process, in batches, aware of running trials.

A group's history goes in (finished trials with their metric, running trials,
the fingerprints of every configuration already in the group) and the next
configurations come out. Nothing is kept between calls: the answer is a pure
function of the constructor's arguments and the call's arguments.

Two phases:
- Initial design. While fewer than `n_initial_trials` have been proposed (and
  whenever fewer than two observations exist), proposal `i` is point `i` of a
  scrambled Sobol sequence seeded by `seed`, decoded through the `Encoder`.
  A point whose configuration is already in the group is passed over for the
  next one, so a discrete space never sees a repeat.
- Model. A GP (scikit-learn's kernels, constant * Matern or RBF with one length
  scale per column, plus white noise) is fitted to the encoded observations, the
  metric standardised and turned so that larger is better. The kernel's
  hyperparameters are the maximum a posteriori under weak priors (log-normal
  length scales around 1, the width of the cube; a small noise level), found by
  L-BFGS-B from the configured length scale, from short ones while there are at
  most 100 points, and from `n_restarts_optimizer` random ones. An acquisition
  function (UCB, EI or POI) of the GP's belief about the metric is maximised over
  the unit cube (EI and POI through their logarithms, which do not underflow):
  random candidates, then L-BFGS-B from the best of them, from others drawn with
  probability exp(acquisition - best acquisition) and from the best observation,
  each candidate snapped to a configuration; in a space with both discrete and
  continuous columns the continuous ones are climbed once more with the discrete
  ones held at allowed values (three climbs per start). The best candidate whose
  configuration is new wins; a discrete space of at most 2048 configurations is
  searched exhaustively.

Batches and running trials use sequential greedy fantasies (Ginsbourger et al.):
each running trial, and each point already chosen in the batch, enters the GP
as if it had finished with a made-up value, either the GP's own prediction
("kriging believer", the default) or the worst value seen ("constant liar",
pessimistic: it spreads a batch further, but with four workers it kept three of
every four suggestions away from the best region; in-process, 20 seeds, 60
trials, 4 workers, EI: Branin regret 0.17 with the liar, 0.0007 with the believer).
Fantasies are taken as exact (no observation noise), so the GP is certain at
those points and the next choice goes elsewhere. They reuse the kernel fitted to
the real observations: one Cholesky factorisation each.

References:
    Srinivas, Krause, Kakade and Seeger, "Gaussian Process Optimization in the
    Bandit Setting", ICML 2010 (UCB).
    Jones, Schonlau and Welch, "Efficient Global Optimization of Expensive
    Black-Box Functions", J. Global Optim. 13, 1998 (EI).
    Ginsbourger, Le Riche and Carraro, "Kriging Is Well-Suited to Parallelize
    Optimization", 2010 (constant liar, kriging believer).
"""

import math
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, ndtr
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Kernel, Matern, WhiteKernel
from threadpoolctl import ThreadpoolController

from app.algorithms.base import Observation, Suggestion
from app.algorithms.encoding import Encoder
from app.algorithms.space import Space, params_hash

ACQUISITIONS = ("ucb", "ei", "poi")
KERNELS = ("matern", "rbf")
PENDING_STRATEGIES = ("constant_liar", "kriging_believer")

DEFAULT_N_WARMUP = 2000
DEFAULT_N_ITER = 10
MIN_OBSERVATIONS = 2  # a GP needs at least two points to say anything
SIGMA_FLOOR = 1e-9

# Kernel hyperparameter ranges, for encoded inputs in [0, 1] and a standardised target.
LENGTH_SCALE_BOUNDS = (1e-2, 1e2)
AMPLITUDE_BOUNDS = (1e-3, 1e3)
# The noise may reach the target's whole variance: the prior below keeps it small
# unless the data need it, and a smoother model with some noise extrapolates better
# from few points in many dimensions than an interpolating one.
NOISE_BOUNDS = (1e-6, 1.0)
NOISE_INITIAL = 1e-1
GP_ALPHA = 1e-10  # added to the diagonal for numerical safety, as scikit-learn does
GP_FIT_MAXITER = 200
# Hyperparameters need no more digits than this (relative change of the objective);
# tighter only adds factorisations of the kernel matrix.
GP_FIT_FTOL = 1e-6
# A prior on the kernel's hyperparameters (maximum a posteriori, not likelihood alone):
# with 10 to 60 points in 6 dimensions the likelihood alone often sends a length scale
# to its bound, calling a column irrelevant, or shrinks it to fit one point. A log-normal
# prior on each length scale around the size of the unit cube, one on the amplitude
# around 1 (the variance of a standardised target) and an exponential one on the noise.
LENGTH_SCALE_PRIOR_LOG_MEAN = 0.0
LENGTH_SCALE_PRIOR_SD = 0.7
AMPLITUDE_PRIOR_SD = 2.0
NOISE_PRIOR_RATE = 30.0
# Starts of the hyperparameter fit besides the configured length scale: every
# length scale at one of these (then `n_restarts_optimizer` random ones).
FIT_STARTS = (0.2,)
FIT_STARTS_MAX_POINTS = 100
FANTASY_JITTER = 1e-6  # a fantasy's noise, relative to the kernel amplitude

SOBOL_WALK = 4096  # Sobol points examined past `draw_index` before listing cells
ENUMERATE_SIZE = 2048  # discrete spaces this small are searched exhaustively
FALLBACK_SIZE = 2**16  # the largest discrete space whose cells are listed as a last resort
LBFGS_MAXITER = 100
FD_STEP = 1e-5  # central differences of the acquisition for L-BFGS-B

_THREADPOOLS: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread.

    These matrices are small: on a busy host a BLAS thread pool makes a 200 x 200
    Cholesky factorisation a hundred times slower, and the service runs many
    groups side by side anyway.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:  # finding the loaded libraries costs ~0.2 s, once
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def acquisition(
    kind: str,
    mu: np.ndarray,
    sigma: np.ndarray,
    best: float,
    *,
    kappa: float,
    eps: float,
) -> np.ndarray:
    """The acquisition value of GP predictions, for a target to maximise.

    ucb = mu + kappa * sigma; with z = (mu - best - eps) / sigma,
    ei = (mu - best - eps) * Phi(z) + sigma * phi(z) and poi = Phi(z).
    `sigma` is floored at 1e-9, so sigma -> 0 gives ei = max(mu - best - eps, 0)
    and poi = 1 where mu > best + eps, else 0.

    Raises:
        ValueError: an unknown `kind`.
    """
    mu = np.asarray(mu, dtype=float)
    sigma = np.maximum(np.asarray(sigma, dtype=float), SIGMA_FLOOR)
    if kind == "ucb":
        return mu + kappa * sigma
    improvement = mu - best - eps
    z = improvement / sigma
    if kind == "ei":
        density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return improvement * ndtr(z) + sigma * density
    if kind == "poi":
        return ndtr(z)
    raise ValueError(f"unknown acquisition function {kind!r}; expected one of {ACQUISITIONS}")


def log_acquisition(
    kind: str,
    mu: np.ndarray,
    sigma: np.ndarray,
    best: float,
    *,
    kappa: float,
    eps: float,
) -> np.ndarray:
    """What the acquisition is maximised through: log(ei) and log(poi), ucb as it is.

    The logarithm changes no maximiser, but far from the incumbent EI and POI
    underflow to exactly 0, where L-BFGS-B sees a flat surface and the
    candidates cannot be told apart; their logarithms stay finite and sloped.
    With z = (mu - best - eps) / sigma, ei = sigma * h(z), h(z) = z Phi(z) + phi(z).
    For z < 0, h(z) = phi(z) (1 - |z| R(|z|)), R the Mills ratio Phi(-t) / phi(t)
    = sqrt(pi / 2) erfcx(t / sqrt(2)), which stays accurate where Phi(z) underflows.
    """
    mu = np.asarray(mu, dtype=float)
    sigma = np.maximum(np.asarray(sigma, dtype=float), SIGMA_FLOOR)
    if kind == "ucb":
        return mu + kappa * sigma
    z = (mu - best - eps) / sigma
    if kind == "poi":
        return log_ndtr(z)
    if kind != "ei":
        raise ValueError(f"unknown acquisition function {kind!r}; expected one of {ACQUISITIONS}")
    out = np.empty_like(z)
    upper = z >= -1.0
    zu = z[upper]
    out[upper] = np.log(zu * ndtr(zu) + np.exp(-0.5 * zu * zu) / math.sqrt(2.0 * math.pi))
    t = -z[~upper]
    ratio = math.sqrt(0.5 * math.pi) * erfcx(t / math.sqrt(2.0))
    # 1 - t R(t) is about 1 / t^2 for large t: floored so the logarithm stays finite.
    rest = np.maximum(1.0 - t * ratio, 1e-300)
    out[~upper] = -0.5 * t * t - 0.5 * math.log(2.0 * math.pi) + np.log(rest)
    return out + np.log(sigma)


class _Likelihood:
    """The negative log marginal likelihood of the GP and its gradient, in O(n^2 d) memory.

    For the kernel c * shape(r) + w * I (+ GP_ALPHA * I), with r the distance scaled
    by per-column length scales and theta = log(c, l_1 .. l_d, w) in scikit-learn's
    order. It gives the numbers of `GaussianProcessRegressor.log_marginal_likelihood`
    but never forms the (n, n, d) gradient tensor: with W = a a^T - K^-1
    (a = K^-1 y) and P = W * g(r), g = -c shape'(r) / r, the length-scale gradient is
    0.5 * sum_ab P_ab (z_aj - z_bj)^2 = sum_a z_aj^2 (P 1)_a - z_j^T P z_j, z = x / l.
    Only the shapes with a bounded g are handled: RBF and Matern with nu 1.5 or 2.5.
    """

    SHAPES = ("rbf", 1.5, 2.5)

    def __init__(
        self, X: np.ndarray, y: np.ndarray, shape: str | float, prior: bool = False
    ) -> None:
        self.X, self.y, self.shape, self.prior = X, y, shape, prior

    def _shape(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """shape(r) and g(r) = -shape'(r) / r, for c = 1."""
        if self.shape == "rbf":
            k = np.exp(-0.5 * r * r)
            return k, k
        if self.shape == 1.5:
            e = np.exp(-math.sqrt(3.0) * r)
            return (1.0 + math.sqrt(3.0) * r) * e, 3.0 * e
        s5r = math.sqrt(5.0) * r
        e = np.exp(-s5r)
        return (1.0 + s5r + s5r * s5r / 3.0) * e, (5.0 / 3.0) * (1.0 + s5r) * e

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        c, noise = math.exp(theta[0]), math.exp(theta[-1])
        z = self.X / np.exp(theta[1:-1])
        sq = np.einsum("ij,ij->i", z, z)
        r2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        r = np.sqrt(np.maximum(r2, 0.0))
        shape, g = self._shape(r)
        n = len(self.y)
        K = c * shape
        K[np.diag_indices(n)] = c + noise + GP_ALPHA
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        a = cho_solve((L, True), self.y, check_finite=False)
        value = 0.5 * self.y @ a + np.log(np.diag(L)).sum() + 0.5 * n * math.log(2 * math.pi)
        W = np.outer(a, a) - cho_solve((L, True), np.eye(n), check_finite=False)
        P = W * (c * g)
        P[np.diag_indices(n)] = 0.0
        grad = np.empty_like(theta)
        grad[0] = 0.5 * np.sum(W * (c * shape))
        grad[1:-1] = (z * z).T @ P.sum(axis=1) - np.einsum("aj,aj->j", z, P @ z)
        grad[-1] = 0.5 * noise * np.trace(W)
        if self.prior:
            penalty, slope = _log_prior(theta)
            return float(value) + penalty, slope - grad
        return float(value), -grad


def _log_prior(theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The negative log prior of theta = log(c, l_1 .. l_d, w), up to a constant, and its slope.

    Independent Gaussians on log c (centred on 1, the variance of a standardised
    target) and on each log length scale, and an exponential on the noise level
    that keeps it small unless the data ask for more.
    """
    penalty = 0.0
    slope = np.zeros_like(theta)
    t = theta[0] / AMPLITUDE_PRIOR_SD
    penalty += 0.5 * t * t
    slope[0] = t / AMPLITUDE_PRIOR_SD
    u = (theta[1:-1] - LENGTH_SCALE_PRIOR_LOG_MEAN) / LENGTH_SCALE_PRIOR_SD
    penalty += 0.5 * float(u @ u)
    slope[1:-1] = u / LENGTH_SCALE_PRIOR_SD
    noise = math.exp(theta[-1])
    penalty += NOISE_PRIOR_RATE * noise
    slope[-1] = NOISE_PRIOR_RATE * noise
    return penalty, slope


def _cholesky(K: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of K, with growing jitter if rounding made it indefinite."""
    scale = float(np.mean(np.diag(K)))
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        try:
            return np.linalg.cholesky(K + jitter * scale * np.eye(len(K)) if jitter else K)
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("the GP covariance is not positive definite")


class _Posterior:
    """A GP conditioned on points with per-point noise, read without scikit-learn's checks.

    `kernel` is the noise-free part of the fitted kernel. Each point `i` of `X`
    has observation noise `noise[i]`. The prediction is the belief about the
    noise-free function: mean = k(x, X) a with a = K^-1 y, K = k(X, X) + diag(noise),
    and var = k(x, x) - |L^-1 k(X, x)|^2, with L^-1 formed once so that each
    call is two matrix products.
    """

    def __init__(self, kernel: Kernel, X: np.ndarray, y: np.ndarray, noise: np.ndarray) -> None:
        self.kernel = kernel
        self.X = X
        K = kernel(X)
        K[np.diag_indices(len(X))] += noise + GP_ALPHA
        L = _cholesky(K)
        self.alpha = cho_solve((L, True), y, check_finite=False)
        self.L_inv = solve_triangular(L, np.eye(len(X)), lower=True, check_finite=False)

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cross = self.kernel(points, self.X)
        mean = cross @ self.alpha
        v = cross @ self.L_inv.T
        var = self.kernel.diag(points) - np.einsum("ij,ij->i", v, v)
        return mean, np.sqrt(np.maximum(var, 0.0))


@dataclass
class _Model:
    """What the next choice is made against: real observations, then fantasies."""

    kernel: Kernel  # fitted, noise-free part
    X: np.ndarray  # encoded
    y: np.ndarray  # standardised, larger is better
    noise: np.ndarray  # per point: the fitted noise level, or FANTASY_JITTER * amplitude
    n_fantasies: int
    posterior: _Posterior

    @classmethod
    def build(
        cls, kernel: Kernel, X: np.ndarray, y: np.ndarray, noise: np.ndarray, n_fantasies: int
    ) -> "_Model":
        return cls(kernel, X, y, noise, n_fantasies, _Posterior(kernel, X, y, noise))

    def with_fantasies(self, points: np.ndarray, values: np.ndarray) -> "_Model":
        jitter = FANTASY_JITTER * float(self.kernel.diag(points[:1])[0])
        return _Model.build(
            self.kernel,
            np.vstack([self.X, points]),
            np.concatenate([self.y, values]),
            np.concatenate([self.noise, np.full(len(points), jitter)]),
            self.n_fantasies + len(points),
        )


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _initial_reason(acquisition: str, n_observations: int, n_pending: int) -> dict[str, Any]:
    return {
        "phase": "initial",
        "acquisition": acquisition,
        "acquisition_value": None,
        "predicted_mean": None,
        "predicted_std": None,
        "pending_strategy": None,
        "n_observations": n_observations,
        "n_pending": n_pending,
    }


@dataclass
class _Pick:
    params: dict[str, Any]
    params_hash: str
    point: np.ndarray
    value: float
    mean: float
    std: float


class BayesianOptimizer:
    """GP-based Bayesian optimisation over any space the `Encoder` accepts.

    Args:
        space: The search space. A param with `size` is refused.
        seed: Seeds the Sobol design, the GP fits and the candidate draws.
        maximize: Whether larger metric values are better.
        n_initial_trials: Proposals drawn from the Sobol design before the model is used.
        acquisition: "ucb", "ei" or "poi" (any case).
        kappa: The UCB exploration weight.
        eps: The EI and POI improvement margin, on the standardised scale.
        kernel: "matern" or "rbf", each with one length scale per column.
        length_scale: The initial length scale of every column.
        nu: The Matern smoothness.
        n_restarts_optimizer: Extra random restarts of the kernel hyperparameter fit.
        n_warmup: Random candidates probing the acquisition (None: 2000).
        n_iter: L-BFGS-B runs from the best candidates (None: 10).
        pending_strategy: "kriging_believer" (the default) or "constant_liar".

    Raises:
        ValueError: an unknown option value, or a space the encoder refuses.
    """

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        maximize: bool,
        n_initial_trials: int,
        acquisition: str = "ucb",
        kappa: float = 2.576,
        eps: float = 0.0,
        kernel: str = "matern",
        length_scale: float = 1.0,
        nu: float = 2.5,
        n_restarts_optimizer: int = 0,
        n_warmup: int | None = None,
        n_iter: int | None = None,
        pending_strategy: str = "kriging_believer",
    ) -> None:
        acquisition, kernel, pending_strategy = map(_lower, (acquisition, kernel, pending_strategy))
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if pending_strategy not in PENDING_STRATEGIES:
            raise ValueError(
                f"pending_strategy must be one of {PENDING_STRATEGIES}, got {pending_strategy!r}"
            )
        if not length_scale > 0:
            raise ValueError(f"length_scale must be > 0, got {length_scale!r}")
        if not nu > 0:
            raise ValueError(f"nu must be > 0, got {nu!r}")
        if n_initial_trials < 0 or n_restarts_optimizer < 0:
            raise ValueError("n_initial_trials and n_restarts_optimizer must be >= 0")
        if n_warmup is not None and n_warmup < 1:
            raise ValueError(f"n_warmup must be >= 1, got {n_warmup!r}")
        if n_iter is not None and n_iter < 0:
            raise ValueError(f"n_iter must be >= 0, got {n_iter!r}")
        self.space = space
        self.encoder = Encoder(space)
        self.seed = int(seed)
        self.maximize = bool(maximize)
        self.n_initial_trials = int(n_initial_trials)
        self.acquisition = acquisition
        self.kappa = float(kappa)
        self.eps = float(eps)
        self.kernel = kernel
        self.length_scale = float(length_scale)
        self.nu = float(nu)
        self.n_restarts_optimizer = int(n_restarts_optimizer)
        self.n_warmup = DEFAULT_N_WARMUP if n_warmup is None else int(n_warmup)
        self.n_iter = DEFAULT_N_ITER if n_iter is None else int(n_iter)
        self.pending_strategy = pending_strategy
        self._cells: tuple[np.ndarray, list[dict[str, Any]], list[str]] | None = None

    # -- the public call -------------------------------------------------------

    def suggest(
        self,
        observations: Sequence[Observation],
        pending: Sequence[dict[str, Any]],
        taken: Collection[str],
        count: int,
        *,
        draw_index: int,
    ) -> list[Suggestion]:
        """Up to `count` new configurations, none of them in `taken` or `pending`.

        Args:
            observations: Finished trials with a finite metric value (others are skipped).
            pending: The params of running trials.
            taken: The params_hash of every configuration already in the group.
            count: How many configurations to propose.
            draw_index: How many configurations the group has proposed so far.

        Returns:
            At most `count` suggestions, fewer only when the space has no new
            configuration left (for a quantized continuous space: none was found).
        """
        if count <= 0:
            return []
        with _one_blas_thread():
            return self._suggest(observations, pending, taken, count, draw_index)

    def _suggest(
        self,
        observations: Sequence[Observation],
        pending: Sequence[dict[str, Any]],
        taken: Collection[str],
        count: int,
        draw_index: int,
    ) -> list[Suggestion]:
        excluded = set(taken) | {params_hash(p) for p in pending}
        observed = [o for o in observations if math.isfinite(o.value)]
        if self.encoder.dims == 0:  # an empty matrix has one configuration: {}
            digest = params_hash({})
            reason = _initial_reason(self.acquisition, len(observed), len(pending))
            return [] if digest in excluded else [Suggestion({}, digest, reason)]
        n_initial = max(0, min(count, self.n_initial_trials - draw_index))
        if len(observed) < MIN_OBSERVATIONS:
            n_initial = count
        out = self._initial(draw_index, n_initial, excluded, len(observed), len(pending))
        if len(out) == n_initial < count:
            out += self._from_model(observed, pending, out, count - n_initial, excluded, draw_index)
        return out

    # -- initial design --------------------------------------------------------

    def _sobol(self, m: int) -> np.ndarray:
        engine = qmc.Sobol(d=self.encoder.dims, scramble=True, seed=self.seed % 2**63)
        return engine.random_base2(m)

    def _initial(
        self, draw_index: int, n: int, excluded: set[str], n_observations: int, n_pending: int
    ) -> list[Suggestion]:
        if n == 0:
            return []
        reason = _initial_reason(self.acquisition, n_observations, n_pending)
        chosen: list[Suggestion] = []
        seen = set(excluded)
        size = self.space.size
        if size is not None and size <= ENUMERATE_SIZE:
            # A small discrete space: stop as soon as its free cells are all chosen.
            n = min(n, sum(h not in seen for h in self._all_cells()[2]))
            if n == 0:
                return []
        # Sobol points form one sequence: the first N of 2**m points are the first N
        # of 2**(m + k), so the design is drawn in growing powers of two as needed.
        limit = draw_index + max(n, SOBOL_WALK)
        m = math.ceil(math.log2(draw_index + n))
        points = self._sobol(m)
        for i in range(draw_index, limit):
            if i >= len(points):
                m = max(m + 3, math.ceil(math.log2(i + 1)))
                points = self._sobol(m)
            params = self.encoder.decode(points[i])
            digest = params_hash(params)
            if digest in seen:
                continue
            seen.add(digest)
            chosen.append(Suggestion(params, digest, dict(reason)))
            if len(chosen) == n:
                return chosen
        # Only a space whose draws repeat gets here; list a discrete one's free cells.
        if size is not None and size <= FALLBACK_SIZE:
            _, cells, hashes = self._all_cells()
            for params, digest in zip(cells, hashes, strict=True):
                if digest not in seen:
                    seen.add(digest)
                    chosen.append(Suggestion(dict(params), digest, dict(reason)))
                    if len(chosen) == n:
                        break
        return chosen

    def _all_cells(self) -> tuple[np.ndarray, list[dict[str, Any]], list[str]]:
        """Every configuration of a discrete space, encoded and hashed (cached)."""
        if self._cells is None:
            cells = [self.space.cell(i) for i in range(self.space.size or 0)]
            self._cells = (
                self.encoder.encode_many(cells),
                cells,
                [params_hash(c) for c in cells],
            )
        return self._cells

    # -- model phase -----------------------------------------------------------

    def _base_kernel(self, dims: int) -> Kernel:
        scales = np.full(dims, self.length_scale)
        bounds = (
            min(LENGTH_SCALE_BOUNDS[0], self.length_scale),
            max(LENGTH_SCALE_BOUNDS[1], self.length_scale),
        )
        if self.kernel == "rbf":
            shape: Kernel = RBF(length_scale=scales, length_scale_bounds=bounds)
        else:
            shape = Matern(length_scale=scales, length_scale_bounds=bounds, nu=self.nu)
        noise = WhiteKernel(NOISE_INITIAL, NOISE_BOUNDS)
        return ConstantKernel(1.0, AMPLITUDE_BOUNDS) * shape + noise

    def _fit(self, X: np.ndarray, y: np.ndarray, draw_index: int) -> Kernel:
        """The kernel (constant * shape + white noise) with its hyperparameters fitted."""
        base = self._base_kernel(X.shape[1])
        shape: str | float = "rbf" if self.kernel == "rbf" or math.isinf(self.nu) else self.nu
        if shape not in _Likelihood.SHAPES:
            gp = GaussianProcessRegressor(
                kernel=base,
                alpha=GP_ALPHA,
                normalize_y=False,
                n_restarts_optimizer=self.n_restarts_optimizer,
                random_state=(self.seed + draw_index) % 2**32,
            )
            with warnings.catch_warnings():
                # Length scales at a bound are expected (an irrelevant column), not news.
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(X, y)
            return gp.kernel_
        likelihood = _Likelihood(X, y, shape, prior=True)
        bounds = base.bounds
        dims = X.shape[1]
        theta0 = base.theta
        starts = [theta0]
        # Each start costs a fit; with many points one start is enough (the
        # likelihood has a clear maximum) and the time goes to larger matrices.
        if len(y) <= FIT_STARTS_MAX_POINTS:
            for scale in FIT_STARTS:
                t = theta0.copy()
                t[1:-1] = math.log(scale)
                starts.append(t)
        rng = np.random.default_rng([self.seed % 2**63, draw_index, 0xF1])
        for _ in range(self.n_restarts_optimizer):
            t = theta0.copy()
            t[1:-1] = rng.uniform(math.log(0.05), math.log(2.0), dims)
            starts.append(t)
        best_theta, best_value = theta0, math.inf
        for start in starts:
            start = np.clip(start, bounds[:, 0], bounds[:, 1])
            result = minimize(
                likelihood,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": GP_FIT_MAXITER, "ftol": GP_FIT_FTOL},
            )
            if result.fun < best_value:
                best_theta, best_value = result.x, float(result.fun)
        return base.clone_with_theta(best_theta)

    def _lies(self, model: _Model, points: np.ndarray, y_real: np.ndarray) -> np.ndarray:
        if self.pending_strategy == "constant_liar":
            return np.full(len(points), y_real.min())
        return model.posterior.predict(points)[0]

    def _from_model(
        self,
        observed: Sequence[Observation],
        pending: Sequence[dict[str, Any]],
        batch: Sequence[Suggestion],
        n: int,
        excluded: set[str],
        draw_index: int,
    ) -> list[Suggestion]:
        sign = 1.0 if self.maximize else -1.0
        X = self.encoder.encode_many([o.params for o in observed])
        raw = sign * np.array([float(o.value) for o in observed])
        center = float(raw.mean())
        spread = float(raw.std())
        spread = spread if spread > 0 else 1.0
        y = (raw - center) / spread
        fitted = self._fit(X, y, draw_index)
        noise = np.full(len(y), fitted.k2.noise_level)
        model = _Model.build(fitted.k1, X, y, noise, 0)
        fantasies = [*pending, *(s.params for s in batch)]
        if fantasies:
            points = self.encoder.encode_many(fantasies)
            model = model.with_fantasies(points, self._lies(model, points, y))
        rng = np.random.default_rng([self.seed % 2**63, draw_index, 0xB0])
        starts = X[np.argsort(-y, kind="stable")[: self.n_iter]]
        seen = excluded | {s.params_hash for s in batch}
        out: list[Suggestion] = []
        for _ in range(n):
            # The incumbent counts fantasies as observations: a kriging believer's
            # fantasy at a promising point raises it, so EI and POI look elsewhere.
            best = float(model.y.max())
            pick = self._maximise(model.posterior, best, starts, rng, seen)
            if pick is None:
                break
            seen.add(pick.params_hash)
            out.append(
                Suggestion(
                    pick.params,
                    pick.params_hash,
                    {
                        "phase": "model",
                        "acquisition": self.acquisition,
                        "acquisition_value": self._reported(pick.value),
                        "predicted_mean": sign * (pick.mean * spread + center),
                        "predicted_std": pick.std * spread,
                        "pending_strategy": self.pending_strategy if model.n_fantasies else None,
                        "n_observations": len(observed),
                        "n_pending": model.n_fantasies,
                    },
                )
            )
            if len(out) < n:
                point = pick.point[None, :]
                model = model.with_fantasies(point, self._lies(model, point, y))
        return out

    # -- maximising the acquisition --------------------------------------------

    def _score(
        self, posterior: _Posterior, points: np.ndarray, best: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The acquisition of each point in the scale it is maximised in, with mu and sigma."""
        mu, sd = posterior.predict(points)
        values = log_acquisition(self.acquisition, mu, sd, best, kappa=self.kappa, eps=self.eps)
        return values, mu, sd

    def _reported(self, value: float) -> float:
        """An acquisition value as the user knows it: ei and poi back from their logarithm."""
        return value if self.acquisition == "ucb" else math.exp(value)

    def _maximise(
        self,
        posterior: _Posterior,
        best: float,
        starts: np.ndarray,
        rng: np.random.Generator,
        excluded: set[str],
    ) -> _Pick | None:
        size = self.space.size
        if size is not None and size <= ENUMERATE_SIZE:
            return self._best_cell(posterior, best, excluded)
        dims = self.encoder.dims
        candidates = self.encoder.snap(np.vstack([rng.random((self.n_warmup, dims)), starts]))
        values, mu, sd = self._score(posterior, candidates, best)
        chosen = _starts(candidates, values, self.n_iter, rng)
        if len(starts) and self.n_iter > 0:
            # The incumbent is always climbed from: near convergence the best
            # acquisition is next to it, and random candidates rarely land that close.
            incumbent = len(candidates) - len(starts)
            if incumbent not in chosen:
                chosen.append(incumbent)
        local = [self._climb(posterior, best, candidates[i]) for i in chosen]
        if local:
            climbed = self.encoder.snap(np.array(local))
            discrete = self.encoder.is_discrete_column
            if discrete.any() and not discrete.all():
                # A climb through the relaxed cube ends between the allowed values of
                # the discrete columns; snapping moves it off the hill it climbed. So
                # the continuous columns are climbed again with the discrete ones held,
                # from each snapped end and from each start (whose discrete values
                # may be better than the ones the relaxed climb snapped to).
                held = np.vstack([climbed, candidates[chosen]])
                polished = [self._climb(posterior, best, x, fixed=discrete) for x in held]
                climbed = np.vstack([climbed, self.encoder.snap(np.array(polished))])
            more = self._score(posterior, climbed, best)
            candidates = np.vstack([candidates, climbed])
            values, mu, sd = (
                np.concatenate(pair) for pair in zip((values, mu, sd), more, strict=True)
            )
        tried: set[bytes] = set()
        for i in np.argsort(-values, kind="stable"):
            key = candidates[i].tobytes()
            if key in tried:
                continue
            tried.add(key)
            params = self.encoder.decode(candidates[i])
            digest = params_hash(params)
            if digest not in excluded:
                return _Pick(
                    params, digest, candidates[i], float(values[i]), float(mu[i]), float(sd[i])
                )
        if size is not None and size <= FALLBACK_SIZE:
            return self._best_cell(posterior, best, excluded)
        return None

    def _climb(
        self,
        posterior: _Posterior,
        best: float,
        start: np.ndarray,
        fixed: np.ndarray | None = None,
    ) -> np.ndarray:
        """A local maximum of the acquisition near `start`, by L-BFGS-B in the unit cube.

        Columns where `fixed` is true keep their value in `start`.
        """
        dims = len(start)
        bounds = list(self.encoder.bounds)
        if fixed is not None:
            for j in np.flatnonzero(fixed):
                bounds[j] = (float(start[j]), float(start[j]))
        steps = FD_STEP * np.eye(dims)

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            points = np.vstack([x[None, :], x + steps, x - steps])
            a, _, _ = self._score(posterior, points, best)
            return -float(a[0]), -(a[1 : dims + 1] - a[dims + 1 :]) / (2 * FD_STEP)

        result = minimize(
            negative,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": LBFGS_MAXITER},
        )
        return np.clip(result.x, 0.0, 1.0)

    def _best_cell(self, posterior: _Posterior, best: float, excluded: set[str]) -> _Pick | None:
        """The free configuration of a discrete space with the best acquisition value."""
        points, cells, hashes = self._all_cells()
        free = np.flatnonzero([h not in excluded for h in hashes])
        if len(free) == 0:
            return None
        values, mu, sd = self._score(posterior, points[free], best)
        i = int(np.argmax(values))
        j = int(free[i])
        return _Pick(
            dict(cells[j]), hashes[j], points[j], float(values[i]), float(mu[i]), float(sd[i])
        )


def _starts(points: np.ndarray, values: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """Where the local searches start: the best candidate, then `n - 1` more drawn with
    probability exp(value - best value), distinct points only.

    The best few candidates by value usually sit on one hill of the acquisition;
    drawn this way, the starts also reach other hills that are nearly as high, so
    that one of them, once climbed, can turn out higher.
    """
    if n <= 0 or len(points) == 0:
        return []
    top = int(np.argmax(values))
    weights = np.exp(np.minimum(values - values[top], 0.0))
    weights[top] = 0.0
    _, first = np.unique(points, axis=0, return_index=True)
    mask = np.zeros(len(points), dtype=bool)
    mask[first] = True
    weights = np.where(mask, weights, 0.0)
    chosen = [top]
    available = int(np.count_nonzero(weights > 0))
    if available and n > 1:
        picks = rng.choice(
            len(points), size=min(n - 1, available), replace=False, p=weights / weights.sum()
        )
        chosen.extend(int(i) for i in picks)
    return chosen

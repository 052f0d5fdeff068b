"""A numeric encoding of a search space for model-based search: every column in [0, 1].

Each matrix option becomes one or more columns of a vector in the unit cube, and
every point of the cube decodes back to an allowed configuration:

- `uniform` and `loguniform`: one column, linear in the value (uniform) or in its
  natural-log exponent (loguniform, whose bounds are exponents). The quantized
  kinds encode like their parent; decoding rounds to the q grid with the rule of
  `space.py` (round(x / q) * q), so the result stays between the rounded bounds.
- `normal`, `lognormal` and their quantized kinds: one column through the normal
  CDF, column = Phi((x - loc) / scale) (of log x for the log kinds). Decoding
  clips the column to [1e-6, 1 - 1e-6] first, so values stay within about 4.75
  scales of `loc`.
- A discrete list of numbers (`values` of numbers only, `range`, `linspace`,
  `logspace`, `geomspace`): one ordinal column over the sorted distinct values,
  placed by value (in log scale for positive `logspace`/`geomspace` lists and for
  positive lists whose max/min exceeds 100). Decoding snaps to the nearest value.
- A categorical `values` list (any non-number, bools included) and `pvalues`:
  one-hot columns, decoded by the largest column. An outcome of `pvalues` with
  probability 0 is never decoded.

A list-valued draw (`size`) has no fixed-width encoding and is refused.
"""

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from app.algorithms.space import Param, Space, to_python

CDF_CLIP = 1e-6  # decoding keeps a CDF column inside [CDF_CLIP, 1 - CDF_CLIP]
LOG_RATIO = 100.0  # positive numeric lists spanning more than this are placed in log scale
LOG_KINDS = frozenset({"logspace", "geomspace"})
_TINY = 1e-300  # stands for 0 under a log; its column is clipped to the low end anyway


@dataclass(frozen=True)
class ColumnGroup:
    """The columns of one param: `encoding` is how its value maps to them.

    `encoding` is one of "linear", "log" (uniform kinds), "normal", "lognormal"
    (CDF kinds), "ordinal" (a numeric list) or "onehot" (categories).
    """

    name: str
    kind: str
    encoding: str
    start: int
    stop: int

    @property
    def columns(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def width(self) -> int:
        return self.stop - self.start


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _index_of(values: Sequence[Any], value: Any) -> int:
    """The position of `value`: same type first, then equal, then close (never 1 for True)."""
    for i, v in enumerate(values):
        if type(v) is type(value) and v == value:
            return i
    for i, v in enumerate(values):
        if isinstance(v, bool) == isinstance(value, bool) and v == value:
            return i
    if _is_number(value):  # a value typed by a person: 0.1 for 0.1000000000000001
        for i, v in enumerate(values):
            if _is_number(v) and math.isclose(v, value, rel_tol=1e-9, abs_tol=1e-12):
                return i
    raise KeyError(value)


class _Codec:
    """How one param maps to its columns. Arrays are (n, width)."""

    encoding: str
    width: int

    def encode(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def decode(self, row: np.ndarray) -> Any:
        raise NotImplementedError

    def snap(self, block: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _Interval(_Codec):
    """uniform, loguniform and their quantized kinds: one linear column over [low, high]."""

    width = 1

    def __init__(self, param: Param) -> None:
        a = param.args
        self.log = param.kind in ("loguniform", "qloguniform")
        self.encoding = "log" if self.log else "linear"
        self.low, self.high = float(a["low"]), float(a["high"])
        if self.low > self.high:
            self.low, self.high = self.high, self.low
        self.q = a["q"] if param.is_quantized else None
        self.bounds = (a["low"], a["high"])  # as space.py passes them to the int rule

    def _to_column(self, x: np.ndarray) -> np.ndarray:
        t = np.log(np.maximum(x, _TINY)) if self.log else x
        span = self.high - self.low
        if span <= 0:
            return np.zeros_like(t)
        return np.clip((t - self.low) / span, 0.0, 1.0)

    def _from_column(self, c: np.ndarray) -> np.ndarray:
        u = self.low + np.clip(c, 0.0, 1.0) * (self.high - self.low)
        u = np.clip(u, self.low, self.high)
        return np.exp(u) if self.log else u

    def encode(self, value: Any) -> np.ndarray:
        return self._to_column(np.array([float(value)]))

    def decode(self, row: np.ndarray) -> Any:
        x = float(self._from_column(row[:1])[0])
        if self.q is None:
            return x
        return Param._quantize(x, self.q, *self.bounds)

    def snap(self, block: np.ndarray) -> np.ndarray:
        if self.q is None:
            return np.clip(block, 0.0, 1.0)
        x = np.round(self._from_column(block) / self.q) * self.q
        return self._to_column(x)


class _Gaussian(_Codec):
    """normal, lognormal and their quantized kinds: one column through the normal CDF."""

    width = 1

    def __init__(self, param: Param) -> None:
        a = param.args
        self.log = param.kind in ("lognormal", "qlognormal")
        self.encoding = "lognormal" if self.log else "normal"
        self.loc, self.scale = float(a["loc"]), abs(float(a["scale"]))
        self.q = a["q"] if param.is_quantized else None

    def _to_column(self, x: np.ndarray) -> np.ndarray:
        t = np.log(np.maximum(x, _TINY)) if self.log else x
        if self.scale == 0:
            return np.full_like(t, 0.5)
        return np.clip(ndtr((t - self.loc) / self.scale), 0.0, 1.0)

    def _from_column(self, c: np.ndarray) -> np.ndarray:
        t = self.loc + self.scale * ndtri(np.clip(c, CDF_CLIP, 1.0 - CDF_CLIP))
        return np.exp(t) if self.log else t

    def encode(self, value: Any) -> np.ndarray:
        return self._to_column(np.array([float(value)]))

    def decode(self, row: np.ndarray) -> Any:
        x = float(self._from_column(row[:1])[0])
        if self.q is None:
            return x
        return Param._quantize(x, self.q)

    def snap(self, block: np.ndarray) -> np.ndarray:
        if self.q is None:
            return np.clip(block, CDF_CLIP, 1.0 - CDF_CLIP)
        x = np.round(self._from_column(block) / self.q) * self.q
        return self._to_column(x)


class _Ordinal(_Codec):
    """A list of numbers: one column, each distinct value at its place between min and max."""

    width = 1
    encoding = "ordinal"

    def __init__(self, param: Param) -> None:
        numeric: dict[float, Any] = {}
        for v in param.values:
            numeric.setdefault(float(v), v)  # the first of equal values speaks for them
        keys = sorted(numeric)
        lo, hi = keys[0], keys[-1]
        self.log = lo > 0 and (param.kind in LOG_KINDS or hi / lo > LOG_RATIO)
        self.choices = [numeric[k] for k in keys]
        t = np.log(np.array(keys)) if self.log else np.array(keys)
        self.t_low, self.t_span = float(t[0]), float(t[-1] - t[0])
        self.positions = self._place(t)

    def _place(self, t: np.ndarray) -> np.ndarray:
        if self.t_span <= 0:
            return np.full_like(t, 0.5)
        return np.clip((t - self.t_low) / self.t_span, 0.0, 1.0)

    def _nearest(self, c: np.ndarray) -> np.ndarray:
        # Positions are sorted: the nearest is one of the two neighbours of c.
        right = np.clip(np.searchsorted(self.positions, c), 0, len(self.positions) - 1)
        left = np.clip(right - 1, 0, len(self.positions) - 1)
        closer_left = np.abs(c - self.positions[left]) <= np.abs(self.positions[right] - c)
        return np.where(closer_left, left, right)

    def encode(self, value: Any) -> np.ndarray:
        x = float(value)
        t = math.log(max(x, _TINY)) if self.log else x
        return self._place(np.array([t]))

    def decode(self, row: np.ndarray) -> Any:
        return self.choices[int(self._nearest(row[:1])[0])]

    def snap(self, block: np.ndarray) -> np.ndarray:
        return self.positions[self._nearest(block[:, 0])][:, None]


class _OneHot(_Codec):
    """Categories: one column each; the largest column wins (ties: the first)."""

    encoding = "onehot"

    def __init__(self, param: Param) -> None:
        self.choices = list(param.values)
        self.width = len(self.choices)
        p = param.probabilities
        allowed = np.ones(self.width, bool) if p is None else p > 0
        if not allowed.any():
            allowed[:] = True
        self.penalty = np.where(allowed, 0.0, -np.inf)

    def _winner(self, block: np.ndarray) -> np.ndarray:
        return np.argmax(block + self.penalty, axis=1)

    def encode(self, value: Any) -> np.ndarray:
        out = np.zeros(self.width)
        out[_index_of(self.choices, value)] = 1.0
        return out

    def decode(self, row: np.ndarray) -> Any:
        return self.choices[int(self._winner(row[None, :])[0])]

    def snap(self, block: np.ndarray) -> np.ndarray:
        out = np.zeros_like(block)
        out[np.arange(len(block)), self._winner(block)] = 1.0
        return out


def _codec(param: Param) -> _Codec:
    if isinstance(param.args, Mapping) and param.args.get("size") is not None:
        raise ValueError(
            f"{param.name!r} draws a list ({param.kind} with size); "
            "model-based search cannot encode list-valued params"
        )
    if param.kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        return _Interval(param)
    if param.kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        return _Gaussian(param)
    if param.kind == "pvalues":
        return _OneHot(param)
    if param.kind in ("values", "range", "linspace", "logspace", "geomspace"):
        values = param.values
        if not values:
            raise ValueError(f"{param.name!r} has no values to choose from")
        if param.kind == "values" and not all(_is_number(v) for v in values):
            return _OneHot(param)
        return _Ordinal(param)
    raise ValueError(f"unknown matrix option kind {param.kind!r} for {param.name!r}")


class Encoder:
    """Maps configurations of a `Space` to points of [0, 1]**dims and back.

    `decode(encode(p)) == p` for every configuration the space can produce
    (floats to about 1e-9; normal kinds within 4.75 scales of `loc`), and every
    point of the cube decodes to an allowed configuration.

    Raises:
        ValueError: a param draws a list (`size`), or has no values.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        self._codecs: list[_Codec] = []
        groups: list[ColumnGroup] = []
        start = 0
        for param in space.params:
            codec = _codec(param)
            self._codecs.append(codec)
            groups.append(
                ColumnGroup(param.name, param.kind, codec.encoding, start, start + codec.width)
            )
            start += codec.width
        self.groups: tuple[ColumnGroup, ...] = tuple(groups)
        self.dims: int = start
        self.bounds: list[tuple[float, float]] = [(0.0, 1.0)] * self.dims
        self.is_categorical_column = np.zeros(self.dims, bool)
        self.is_discrete_column = np.zeros(self.dims, bool)
        for param, group in zip(space.params, groups, strict=True):
            if group.encoding == "onehot":
                self.is_categorical_column[group.columns] = True
            if group.encoding in ("onehot", "ordinal") or param.is_quantized:
                self.is_discrete_column[group.columns] = True

    @property
    def onehot_groups(self) -> tuple[ColumnGroup, ...]:
        """The groups of one-hot columns, one per categorical param."""
        return tuple(g for g in self.groups if g.encoding == "onehot")

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """The point of one configuration, shape (dims,), every column in [0, 1].

        Raises:
            KeyError: a param is missing, or a category is not among its values.
        """
        out = np.empty(self.dims)
        for group, codec in zip(self.groups, self._codecs, strict=True):
            out[group.columns] = codec.encode(params[group.name])
        return out

    def encode_many(self, configurations: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The points of several configurations, shape (n, dims)."""
        out = np.empty((len(configurations), self.dims))
        for i, params in enumerate(configurations):
            out[i] = self.encode(params)
        return out

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """The configuration a point stands for: snapped to the nearest allowed value."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dims,):
            raise ValueError(f"expected a point of shape ({self.dims},), got {x.shape}")
        return {
            group.name: to_python(codec.decode(x[group.columns]))
            for group, codec in zip(self.groups, self._codecs, strict=True)
        }

    def snap(self, points: np.ndarray) -> np.ndarray:
        """`encode(decode(x))` for each row, vectorised: the canonical point of a configuration.

        Accepts one point (dims,) or several (n, dims); returns the same shape.
        Equal to the scalar path up to float rounding.
        """
        points = np.asarray(points, dtype=float)
        block = np.atleast_2d(points)
        out = np.empty_like(block)
        for group, codec in zip(self.groups, self._codecs, strict=True):
            out[:, group.columns] = codec.snap(block[:, group.columns])
        return out.reshape(points.shape)

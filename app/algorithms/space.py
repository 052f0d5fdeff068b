"""The search space: a normalised Polyaxon `matrix`, as values and samplers.

The input is the normalised matrix of `app.schemas.spec` (each option a dict
with one key, e.g. ``{"uniform": {"low": 0, "high": 1}}``), in the user's key
order. Everything here is pure: no I/O, no global random state.
"""

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

CONTINUOUS_KINDS = frozenset(
    {
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    }
)
QUANTIZED_KINDS = frozenset({"quniform", "qloguniform", "qnormal", "qlognormal"})


def to_python(value: Any) -> Any:
    """Turn numpy scalars into the JSON-friendly Python value they stand for."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable fingerprint of one configuration, used to detect repeats."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def _brief(value: Any) -> str:
    # Messages quote what was sent, but never a megabyte of it.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _close(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return False


def _exp(x: float | None) -> float:
    return math.exp(x) if x is not None else math.nan


def _short_float(value: float) -> float:
    # round(x / q) * q leaves binary noise (0.30000000000000004); 12 significant
    # digits is far below any q a person writes and hides that noise.
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class Param:
    """One matrix entry: its name, its option kind and the option's arguments."""

    name: str
    kind: str
    args: Any

    @classmethod
    def from_option(cls, name: str, option: Mapping[str, Any]) -> "Param":
        if len(option) != 1:
            raise ValueError(f"matrix option {name!r} must have exactly one kind, got {option!r}")
        ((kind, args),) = option.items()
        return cls(name=name, kind=kind, args=args)

    @property
    def is_continuous(self) -> bool:
        return self.kind in CONTINUOUS_KINDS

    @property
    def is_quantized(self) -> bool:
        return self.kind in QUANTIZED_KINDS

    @cached_property
    def values(self) -> list[Any]:
        """Every value of a discrete option, in order (for `pvalues`, the outcomes)."""
        a = self.args
        match self.kind:
            case "values":
                return list(a)
            case "pvalues":
                return [pair[0] for pair in a]
            case "range":
                out = np.arange(a["start"], a["stop"], a["step"])
            case "linspace":
                out = np.linspace(a["start"], a["stop"], a["num"])
            case "logspace":
                out = np.logspace(a["start"], a["stop"], a["num"], base=a.get("base", 10))
            case "geomspace":
                out = np.geomspace(a["start"], a["stop"], a["num"])
            case _:
                raise ValueError(f"{self.name!r} is continuous ({self.kind}); it has no value list")
        return [to_python(v) for v in out]

    @cached_property
    def probabilities(self) -> np.ndarray | None:
        """Outcome probabilities of `pvalues` (None for the uniform choice of other kinds).

        As in Polyaxon, probabilities summing below 1 give the leftover to the last outcome.
        """
        if self.kind != "pvalues":
            return None
        p = np.array([float(pair[1]) for pair in self.args])
        p[-1] = max(0.0, 1.0 - p[:-1].sum())
        return p / p.sum()

    def check(self, value: Any) -> str | None:
        """Why `value` is not a value of this option, or None when it is."""
        size = self.args.get("size") if isinstance(self.args, Mapping) else None
        if size is not None:
            if not isinstance(value, list) or len(value) != size:
                return f"Expected a list of {size} numbers."
            return next((m for v in value if (m := self._check_one(v))), None)
        return self._check_one(value)

    def _check_one(self, value: Any) -> str | None:
        if not self.is_continuous:
            for allowed in self.values:
                same_type = isinstance(value, bool) == isinstance(allowed, bool)
                if same_type and (value == allowed or _close(value, allowed)):
                    return None
            return f"{_brief(value)} is not one of the values of this {self.kind} option."
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return "Expected a finite number."
        a = self.args
        low, high = {
            "uniform": (a.get("low"), a.get("high")),
            "quniform": (a.get("low"), a.get("high")),
            "loguniform": (_exp(a.get("low")), _exp(a.get("high"))),
            "qloguniform": (_exp(a.get("low")), _exp(a.get("high"))),
            "lognormal": (0.0, math.inf),
            "qlognormal": (0.0, math.inf),
        }.get(self.kind, (-math.inf, math.inf))
        # Quantized values may round just past a bound, so allow one step of slack.
        slack = float(a.get("q", 0))
        if not low - slack <= value <= high + slack:
            return f"{_brief(value)} is outside [{low}, {high}]."
        return None

    def sample(self, rng: np.random.Generator) -> Any:
        size = self.args.get("size") if isinstance(self.args, Mapping) else None
        if size is not None:
            return [self._draw(rng) for _ in range(int(size))]
        return self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> Any:
        a = self.args
        match self.kind:
            case "pvalues":
                return self.values[int(rng.choice(len(self.values), p=self.probabilities))]
            case "values" | "range" | "linspace" | "logspace" | "geomspace":
                return self.values[int(rng.integers(len(self.values)))]
            case "uniform":
                return float(rng.uniform(a["low"], a["high"]))
            case "quniform":
                return self._quantize(rng.uniform(a["low"], a["high"]), a["q"], a["low"], a["high"])
            case "loguniform":
                # Bounds are natural-log exponents, as in Polyaxon (issue #650).
                return float(math.exp(rng.uniform(a["low"], a["high"])))
            case "qloguniform":
                x = math.exp(rng.uniform(a["low"], a["high"]))
                return self._quantize(x, a["q"], a["low"], a["high"])
            case "normal":
                return float(rng.normal(a["loc"], a["scale"]))
            case "qnormal":
                return self._quantize(rng.normal(a["loc"], a["scale"]), a["q"])
            case "lognormal":
                return float(rng.lognormal(a["loc"], a["scale"]))
            case "qlognormal":
                # Polyaxon 0.x ignored q here; we apply it, as its docs promise.
                return self._quantize(rng.lognormal(a["loc"], a["scale"]), a["q"])
        raise ValueError(f"unknown matrix option kind {self.kind!r} for {self.name!r}")

    @staticmethod
    def _quantize(x: float, q: float, *bounds: float) -> float | int:
        value = round(float(x) / q) * q
        if isinstance(q, int) and all(isinstance(b, int) for b in bounds):
            return int(value)
        return _short_float(value)


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    _by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    @classmethod
    def from_matrix(cls, matrix: Mapping[str, Mapping[str, Any]]) -> "Space":
        return cls(tuple(Param.from_option(name, option) for name, option in matrix.items()))

    @property
    def is_discrete(self) -> bool:
        """True when every option has a finite list of values (pvalues included)."""
        return not any(p.is_continuous for p in self.params)

    @property
    def can_repeat(self) -> bool:
        """True when two independent draws can give the same configuration."""
        return all(not p.is_continuous or p.is_quantized for p in self.params)

    @property
    def is_weighted(self) -> bool:
        return any(p.kind == "pvalues" for p in self.params)

    @cached_property
    def size(self) -> int | None:
        """The number of configurations of an all-discrete space, else None."""
        if not self.is_discrete:
            return None
        return math.prod(len(p.values) for p in self.params)

    def cell(self, index: int) -> dict[str, Any]:
        """Configuration `index` of the grid: the ordered product, first key slowest."""
        if self.size is None or not 0 <= index < self.size:
            raise ValueError(f"grid index must be in [0, {self.size}), got {index}")
        digits: list[Any] = []
        rest = index
        for p in reversed(self.params):
            rest, r = divmod(rest, len(p.values))
            digits.append(p.values[r])
        return {p.name: v for p, v in zip(self.params, reversed(digits), strict=True)}

    def sample(self, seed: int, index: int, attempt: int = 0) -> dict[str, Any]:
        """Draw `index` of a random search: a function of (seed, index, attempt) alone."""
        rng = np.random.default_rng([seed % 2**63, index, attempt])
        return {p.name: p.sample(rng) for p in self.params}

    def names(self) -> Sequence[str]:
        return [p.name for p in self.params]

    def check(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems of a configuration given by a person, as (param name, message) pairs.

        A configuration belongs to the space when it names every param, and each
        value is one of a discrete option's values or lies in a continuous
        option's support.
        """
        problems = [(name, "Unknown parameter.") for name in params if name not in self._by_name]
        for p in self.params:
            if p.name not in params:
                problems.append((p.name, "This parameter is required."))
                continue
            message = p.check(params[p.name])
            if message:
                problems.append((p.name, message))
        return problems


def permuted_index(index: int, size: int, seed: int) -> int:
    """A seeded bijection of [0, size): position `index` of a shuffled order.

    A balanced Feistel network over the smallest even number of bits that holds
    `size`, with cycle walking to stay below `size`. Every index maps to a
    distinct cell without the service remembering which cells were drawn.
    """
    if not 0 <= index < size:
        raise ValueError(f"index must be in [0, {size}), got {index}")
    if size <= 1:
        return 0
    bits = max(2, (size - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = (1 << half) - 1
    key = (seed % 2**64).to_bytes(8, "little")
    x = index
    while True:  # at most a few turns: 2**bits < 4 * size
        left, right = x >> half, x & mask
        for round_ in range(4):
            digest = hashlib.blake2b(
                right.to_bytes((half + 7) // 8 or 1, "little"),
                key=key,
                salt=round_.to_bytes(16, "little"),
                digest_size=max(8, (half + 7) // 8),
            ).digest()
            left, right = right, left ^ (int.from_bytes(digest, "little") & mask)
        x = (left << half) | right
        if x < size:
            return x

"""Pydantic models of Polyaxon's 0.x `hptuning` section, as hpo-engine reads it.

Validation follows Polyaxon (strict: unknown keys are errors) with the
departures recorded in POLYAXON_SPEC.md. Every error carries the path of the
faulty field as its pydantic `loc`, e.g. `("matrix", "lr", "uniform")`.

The algorithms consume the *normalised* form (`MatrixOption.normalized()`,
`HPTuning.normalized()`): one key per option, ranges and distributions always
as dicts with named bounds, numbers kept as the user wrote them (int or float).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "CONTINUOUS_OPTIONS",
    "DISCRETE_OPTIONS",
    "MATRIX_OPTIONS",
    "MAX_OPTION_VALUES",
    "Algorithm",
    "AveragePolicy",
    "BayesianOptimization",
    "DiffPolicy",
    "EarlyStoppingEntry",
    "EarlyStoppingPolicy",
    "FailureEarlyStopping",
    "GaussianProcess",
    "GridSearch",
    "HPTuning",
    "Hyperband",
    "HyperbandResource",
    "MatrixOption",
    "MedianPolicy",
    "Metric",
    "Optimization",
    "RandomSearch",
    "TruncationPolicy",
    "UtilityFunction",
]

DISCRETE_OPTIONS: tuple[str, ...] = (
    "values",
    "pvalues",
    "range",
    "linspace",
    "logspace",
    "geomspace",
)
CONTINUOUS_OPTIONS: tuple[str, ...] = (
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)
MATRIX_OPTIONS: tuple[str, ...] = DISCRETE_OPTIONS + CONTINUOUS_OPTIONS

# A discrete option with more values than this is refused: the algorithms
# materialise value lists, and `range: 0:1e12:1` would exhaust memory.
MAX_OPTION_VALUES = 1_000_000
# Parameters of one search: far beyond what any algorithm here models well.
MAX_PARAMETERS = 1000

# Integers in ranges and distributions must be exact as float64 (BO works in
# floats) and fit numpy's int64; 2**53 satisfies both.
_MAX_EXACT_INT = 2**53

Algorithm = Literal["grid", "random", "hyperband", "bo", "tpe", "mapping"]

_ONE_OPTION_MESSAGE = "Matrix element is not valid, one and only one option is required."
_MATRIX_REQUIRED_MESSAGE = "A matrix definition is required for group specification."
_PVALUES_SUM_MESSAGE = "The distribution of different outcomes should sum to 1."
# Probabilities may add up to a hair over 1 through float rounding (0.1 + 0.2 + 0.7).
_PVALUES_SUM_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- helpers


def _describe(value: Any) -> str:
    """A short repr of user input for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _error(error_type: str, message: str) -> PydanticCustomError:
    # No context is passed, so pydantic leaves braces in the message untouched.
    return PydanticCustomError(error_type, message)


def _raise_at(errors: Sequence[tuple[tuple[str | int, ...], str, str, Any]]) -> NoReturn:
    """Raise errors at paths relative to the object being validated.

    pydantic prefixes the location of a ValidationError raised inside a
    validator with the validator's own location, so a model-level check can
    still point at the exact field (`matrix.lr`, `policy.kind`).
    """
    raise ValidationError.from_exception_data(
        "hptuning",
        [
            InitErrorDetails(type=_error(error_type, message), loc=loc, input=value)
            for loc, error_type, message, value in errors
        ],
    )


def _spelling_normalizer(allowed: tuple[str, ...]) -> Callable[[Any], Any]:
    """Accept `name`, `NAME` and `Name` for each allowed name, as Polyaxon does."""
    spellings = {
        spelling: name for name in allowed for spelling in (name, name.upper(), name.capitalize())
    }
    expected = ", ".join(repr(name) for name in allowed)

    def normalize(value: Any) -> Any:
        if isinstance(value, str) and value in spellings:
            return spellings[value]
        raise _error(
            "enum",
            f"Input should be one of {expected} (lower case, UPPER case or Capitalized), "
            f"received {_describe(value)}",
        )

    return normalize


Optimization = Annotated[
    Literal["maximize", "minimize"],
    BeforeValidator(_spelling_normalizer(("maximize", "minimize"))),
]
_AcquisitionFunction = Annotated[
    Literal["ucb", "ei", "poi"], BeforeValidator(_spelling_normalizer(("ucb", "ei", "poi")))
]
_Kernel = Annotated[
    Literal["matern", "rbf"], BeforeValidator(_spelling_normalizer(("matern", "rbf")))
]
_ResourceType = Annotated[
    Literal["int", "float"], BeforeValidator(_spelling_normalizer(("int", "float")))
]

_PositiveInt = Annotated[int, Field(ge=1)]
# Counts of trials, kept well inside the database's integers.
_Count = Annotated[int, Field(ge=1, le=1_000_000_000)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    # strict: no silent coercion ("5" -> 5, true -> 1, 2.5 -> int error hidden);
    # floats still accept ints. inf/nan are never meaningful in a search spec.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class _Layout:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional


_LAYOUTS: dict[str, _Layout] = {
    "range": _Layout(("start", "stop", "step")),
    "linspace": _Layout(("start", "stop", "num")),
    "logspace": _Layout(("start", "stop", "num"), ("base",)),
    "geomspace": _Layout(("start", "stop", "num")),
    "uniform": _Layout(("low", "high"), ("size",)),
    "quniform": _Layout(("low", "high", "q"), ("size",)),
    "loguniform": _Layout(("low", "high"), ("size",)),
    "qloguniform": _Layout(("low", "high", "q"), ("size",)),
    "normal": _Layout(("loc", "scale"), ("size",)),
    "qnormal": _Layout(("loc", "scale", "q"), ("size",)),
    "lognormal": _Layout(("loc", "scale"), ("size",)),
    "qlognormal": _Layout(("loc", "scale", "q"), ("size",)),
}
_SPACES = ("range", "linspace", "logspace", "geomspace")
_UNIFORM_LIKE = ("uniform", "quniform", "loguniform", "qloguniform")

_INT_TEXT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT_TEXT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")


def _is_unset(value: Any) -> bool:
    # Polyaxon tests options for truthiness: an empty list (or null) is "not set".
    return value is None or (isinstance(value, list | dict | str) and len(value) == 0)


def _to_number(name: str, item: Any) -> int | float:
    """One element of a range or distribution, keeping ints as ints."""
    if isinstance(item, str):
        text = item.strip()
        if _INT_TEXT.match(text):
            item = int(text)
        elif _FLOAT_TEXT.match(text):
            item = float(text)
        else:
            raise _error("matrix_option", f"`{name}` must be a number, received {_describe(item)}")
    if isinstance(item, bool) or not isinstance(item, int | float):
        raise _error("matrix_option", f"`{name}` must be a number, received {_describe(item)}")
    if isinstance(item, int) and abs(item) > _MAX_EXACT_INT:
        raise _error("matrix_option", f"`{name}` is too large, its magnitude must be at most 2**53")
    if isinstance(item, float) and not math.isfinite(item):
        raise _error("matrix_option", f"`{name}` must be a finite number, received {item!r}")
    return item


def _count_message(option: str, layout: _Layout, received: int) -> str:
    required = len(layout.required)
    if layout.optional:
        counts = f"{required} or {required + len(layout.optional)} elements"
    else:
        counts = f"{required} elements"
    return f"{option} requires {counts}, received {received}"


def _split_numeric(option: str, raw: Any) -> list[tuple[str, Any]]:
    """Pair each element of a string, list or dict form with its name."""
    layout = _LAYOUTS[option]
    if isinstance(raw, dict):
        unknown = [key for key in raw if key not in layout.names]
        if unknown:
            raise _error(
                "matrix_option",
                f"{option} does not accept the key {_describe(unknown[0])}; "
                f"allowed keys: {', '.join(layout.names)}",
            )
        missing = [key for key in layout.required if key not in raw]
        if missing:
            raise _error(
                "matrix_option",
                f"{option} requires the keys {', '.join(layout.required)}; "
                f"missing: {', '.join(missing)}",
            )
        return [(name, raw[name]) for name in layout.names if name in raw]
    if isinstance(raw, str):
        items: list[Any] = raw.split(":")
    elif isinstance(raw, list):
        items = raw
    else:
        placeholder = ":".join(layout.required)
        raise _error(
            "matrix_option",
            f"{option} must be a '{placeholder}' string, a list or a mapping, "
            f"received {_type_name(raw)}",
        )
    if len(items) not in (len(layout.required), len(layout.names)):
        raise _error("matrix_option", _count_message(option, layout, len(items)))
    return list(zip(layout.names, items, strict=False))


def _require_positive_int(name: str, value: int | float) -> None:
    if not isinstance(value, int) or value < 1:
        raise _error("matrix_option", f"`{name}` must be a positive integer, received {value!r}")


def _require_positive(name: str, value: int | float) -> None:
    if value <= 0:
        raise _error("matrix_option", f"`{name}` must be greater than 0, received {value!r}")


def _check_space(option: str, bounds: dict[str, int | float]) -> None:
    start, stop = bounds["start"], bounds["stop"]
    if not start < stop:
        raise _error(
            "matrix_option",
            f"`stop` must be strictly greater than `start`, received start={start!r}, "
            f"stop={stop!r}",
        )
    if option == "range":
        step = bounds["step"]
        if step == 0:
            raise _error("matrix_option", "`step` must not be 0")
        # start < stop, so a negative step would generate no value at all.
        _require_positive("step", step)
        ratio = (stop - start) / step
        # An infinite ratio (1e308 / 1e-308) would make math.ceil raise.
        count = math.ceil(ratio) if math.isfinite(ratio) else MAX_OPTION_VALUES + 1
    else:
        num = bounds["num"]
        if num == 0:
            raise _error("matrix_option", "`num` must not be 0")
        _require_positive_int("num", num)
        count = int(num)
    if count > MAX_OPTION_VALUES:
        raise _error(
            "matrix_option",
            f"{option} generates more than {MAX_OPTION_VALUES} values, which is not allowed",
        )
    if option == "logspace" and "base" in bounds:
        base = bounds["base"]
        # A base of 1 repeats one value; a negative base gives nan for fractions.
        if base <= 0 or base == 1:
            raise _error(
                "matrix_option", f"`base` must be greater than 0 and not 1, received {base!r}"
            )
    if option == "geomspace" and start <= 0:
        # numpy.geomspace needs both ends of one sign; we allow the positive side only.
        raise _error(
            "matrix_option",
            f"geomspace requires `start` and `stop` greater than 0, received start={start!r}",
        )


def _check_distribution(option: str, bounds: dict[str, int | float]) -> None:
    if option in _UNIFORM_LIKE:
        # hpo-engine choice: Polyaxon does not order-check distributions, but an
        # interval with low >= high is empty (or a point) and only hides a typo.
        low, high = bounds["low"], bounds["high"]
        if not low < high:
            raise _error(
                "matrix_option",
                f"`high` must be strictly greater than `low`, received low={low!r}, high={high!r}",
            )
    else:
        # No order check between loc and scale (Polyaxon issue #516): `66:30` is
        # a mean of 66 and a deviation of 30.
        _require_positive("scale", bounds["scale"])
    if "q" in bounds:
        if bounds["q"] == 0:
            raise _error("matrix_option", "`q` must not be 0")
        _require_positive("q", bounds["q"])
    if "size" in bounds:
        _require_positive_int("size", bounds["size"])


def _parse_numeric_option(option: str, raw: Any) -> dict[str, int | float]:
    bounds = {name: _to_number(name, item) for name, item in _split_numeric(option, raw)}
    if option in _SPACES:
        _check_space(option, bounds)
    else:
        _check_distribution(option, bounds)
    if option == "logspace":
        bounds.setdefault("base", 10)
    return bounds


def _check_scalar(where: str, item: Any) -> Any:
    if isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53:
        raise _error("matrix_option", f"{where} must be an integer of magnitude at most 2**53")
    if isinstance(item, float) and not math.isfinite(item):
        raise _error("matrix_option", f"{where} must be a finite number, received {item!r}")
    if not isinstance(item, str | int | float):  # bool is an int subclass: accepted
        raise _error(
            "matrix_option",
            f"{where} must be a number, a string or a boolean, received {_type_name(item)}",
        )
    return item


def _parse_values(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise _error("matrix_option", f"values must be a list, received {_type_name(raw)}")
    return [_check_scalar(f"values[{index}]", item) for index, item in enumerate(raw)]


def _parse_pvalues(raw: Any) -> list[list[Any]]:
    if not isinstance(raw, list):
        raise _error(
            "matrix_option",
            f"pvalues must be a list of [value, probability] pairs, received {_type_name(raw)}",
        )
    pairs: list[list[Any]] = []
    for index, item in enumerate(raw):
        where = f"pvalues[{index}]"
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise _error(
                "matrix_option",
                f"{where} must be a [value, probability] pair, received {_describe(item)}",
            )
        value = _check_scalar(f"the value of {where}", item[0])
        probability = item[1]
        # Polyaxon requires a float here; an int 0 or 1 is refused, not converted.
        if not isinstance(probability, float):
            raise _error(
                "matrix_option",
                f"the probability of {where} must be a float such as 0.5, "
                f"received {_describe(probability)}",
            )
        if not (0.0 <= probability < 1.0):
            raise _error(
                "matrix_option",
                f"the probability of {where} must be at least 0 and below 1, "
                f"received {probability!r}",
            )
        pairs.append([value, probability])
    if math.fsum(probability for _, probability in pairs) > 1.0 + _PVALUES_SUM_TOLERANCE:
        raise _error("pvalues_sum", _PVALUES_SUM_MESSAGE)
    return pairs


# Ranges and distributions: 'a:b:c' string, [a, b, c] list or {name: number} mapping.
_NumericField = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[^:]*(:[^:]*){1,3}$"},
                {"type": "array", "items": {"type": ["number", "string"]}},
                {"type": "object", "additionalProperties": {"type": ["number", "string"]}},
                {"type": "null"},
            ]
        }
    ),
]


_ValuesField = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": ["number", "string", "boolean"]}},
                {"type": "null"},
            ]
        }
    ),
]
_PValuesField = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "prefixItems": [
                            {"type": ["number", "string", "boolean"]},
                            {"type": "number"},
                        ],
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
                {"type": "null"},
            ]
        }
    ),
]


class MatrixOption(_Model):
    """One matrix entry: exactly one of the option keys.

    After validation the set field holds its normalised value: a list for
    `values`/`pvalues`, a dict of named numbers for everything else.
    """

    values: _ValuesField = None
    pvalues: _PValuesField = None
    range: _NumericField = None
    linspace: _NumericField = None
    logspace: _NumericField = None
    geomspace: _NumericField = None
    uniform: _NumericField = None
    quniform: _NumericField = None
    loguniform: _NumericField = None
    qloguniform: _NumericField = None
    normal: _NumericField = None
    qnormal: _NumericField = None
    lognormal: _NumericField = None
    qlognormal: _NumericField = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one_option(cls, data: Any) -> Any:
        if isinstance(data, MatrixOption):
            return data
        if not isinstance(data, dict):
            raise _error(
                "matrix_option_count",
                f"{_ONE_OPTION_MESSAGE} Received {_type_name(data)} instead of a mapping "
                "such as {values: [...]}.",
            )
        given = [key for key in MATRIX_OPTIONS if key in data and not _is_unset(data[key])]
        has_unknown = any(key not in MATRIX_OPTIONS for key in data)
        # With no known option but a misspelt key, the "unknown key" error that
        # follows says more than "no option".
        if len(given) > 1 or (not given and not has_unknown):
            raise _error("matrix_option_count", _ONE_OPTION_MESSAGE)
        return {key: value for key, value in data.items() if not _is_unset(value)}

    @field_validator(*MATRIX_OPTIONS, mode="before")
    @classmethod
    def _parse_option(cls, raw: Any, info: ValidationInfo) -> Any:
        option = info.field_name
        if raw is None or option is None:
            return None
        if option == "values":
            return _parse_values(raw)
        if option == "pvalues":
            return _parse_pvalues(raw)
        return _parse_numeric_option(option, raw)

    @property
    def kind(self) -> str:
        """The option key, e.g. `"uniform"`."""
        for option in MATRIX_OPTIONS:
            if getattr(self, option) is not None:
                return option
        raise AssertionError("a validated MatrixOption always has one option")

    @property
    def is_continuous(self) -> bool:
        return self.kind in CONTINUOUS_OPTIONS

    @property
    def is_distribution(self) -> bool:
        return self.kind == "pvalues" or self.is_continuous

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        # model_dump() and API responses show the option as stored, not 14 nulls.
        return self.normalized()

    def normalized(self) -> dict[str, Any]:
        """`{kind: value}` as plain JSON-able data (a fresh copy)."""
        value = getattr(self, self.kind)
        if isinstance(value, dict):
            return {self.kind: dict(value)}
        return {self.kind: [list(item) if isinstance(item, list) else item for item in value]}


# --------------------------------------------------------------------------- algorithms


class Metric(_Model):
    name: _Name
    optimization: Optimization = "maximize"


class HyperbandResource(_Model):
    name: _Name
    type: _ResourceType = "float"


class GridSearch(_Model):
    n_experiments: _Count | None = None


class RandomSearch(_Model):
    # Required at run time by Polyaxon; left optional here as in its schema.
    n_experiments: _Count | None = None


class Hyperband(_Model):
    max_iter: Annotated[int, Field(ge=1, le=1_000_000)]
    # Polyaxon's schema allows eta >= 0, but log(eta) must be positive.
    eta: Annotated[float, Field(gt=1)]
    resource: HyperbandResource
    metric: Metric
    resume: bool = False
    asynchronous: bool = Field(
        default=False,
        description="hpo-engine extension: promote as soon as a rung allows (ASHA-style).",
    )
    n_experiments: _Count | None = Field(
        default=None,
        description=(
            "hpo-engine extension, asynchronous mode only: new configurations to draw "
            "(default: as many as synchronous Hyperband starts)."
        ),
    )

    @model_validator(mode="after")
    def _n_experiments_needs_asynchronous(self) -> Hyperband:
        if self.n_experiments is not None and not self.asynchronous:
            raise _error(
                "n_experiments_synchronous",
                "`n_experiments` applies to asynchronous Hyperband only; synchronous Hyperband "
                "draws what its brackets need.",
            )
        return self


class GaussianProcess(_Model):
    kernel: _Kernel = "matern"
    length_scale: Annotated[float, Field(gt=0)] = 1.0
    nu: Annotated[float, Field(gt=0)] = 1.5
    n_restarts_optimizer: Annotated[int, Field(ge=0)] = 0


class UtilityFunction(_Model):
    acquisition_function: _AcquisitionFunction = "ucb"
    kappa: float | None = Field(default=None, validate_default=True)
    eps: float | None = Field(default=None, validate_default=True)
    gaussian_process: GaussianProcess | None = Field(
        default=None,
        description=(
            "Left out: a Matern kernel with nu 2.5, as when utility_function is left out "
            "(Polyaxon requires it). Given without nu, a Matern kernel has Polyaxon's nu 1.5."
        ),
    )
    n_warmup: _PositiveInt | None = None
    n_iter: _PositiveInt | None = None

    # Field validators (not a model validator) so that the error sits on the
    # missing field itself; acquisition_function is declared first, so it is
    # already in info.data here.
    @field_validator("kappa")
    @classmethod
    def _kappa_for_ucb(cls, kappa: float | None, info: ValidationInfo) -> float | None:
        if kappa is None and info.data.get("acquisition_function") == "ucb":
            raise _error("missing", "the acquisition function `ucb` requires a parameter `kappa`")
        return kappa

    @field_validator("eps")
    @classmethod
    def _eps_for_ei_poi(cls, eps: float | None, info: ValidationInfo) -> float | None:
        function = info.data.get("acquisition_function")
        if eps is None and function in ("ei", "poi"):
            raise _error(
                "missing", f"the acquisition function `{function}` requires a parameter `eps`"
            )
        return eps


PendingStrategy = Literal["constant_liar", "kriging_believer"]


class BayesianOptimization(_Model):
    n_initial_trials: _Count
    n_iterations: Annotated[int, Field(ge=0, le=1_000_000_000)]
    metric: Metric
    utility_function: UtilityFunction | None = None
    pending_strategy: PendingStrategy = Field(
        default="kriging_believer",
        description=(
            "hpo-engine extension: how running trials enter the model so that a batch is "
            "diverse: `kriging_believer` (the default: as if they scored what the model "
            "predicts) or `constant_liar` (as if they scored the worst value seen, which "
            "spreads a batch further but exploits less)."
        ),
    )


class TPESearch(_Model):
    """hpo-engine extension: a Tree-structured Parzen Estimator (Polyaxon v1's hyperopt/tpe)."""

    n_experiments: _Count
    n_initial_trials: _Count = 10
    metric: Metric


# --------------------------------------------------------------------------- early stopping

_POLICY_KINDS: tuple[str, ...] = ("median", "average", "truncation", "diff")
_normalize_policy_kind = _spelling_normalizer(_POLICY_KINDS)
_Percent = Annotated[float, Field(gt=0, lt=100)]


class _PolicyGate(_Model):
    """When a policy looks at a trial: every `evaluation_interval` steps, from
    `min_interval` on, with at least `min_samples` other trials at that step."""

    evaluation_interval: _PositiveInt
    min_interval: _PositiveInt | None = None
    min_samples: _PositiveInt | None = None


class MedianPolicy(_PolicyGate):
    kind: Literal["median"]


class AveragePolicy(_PolicyGate):
    kind: Literal["average"]


class TruncationPolicy(_PolicyGate):
    kind: Literal["truncation"]
    percent: _Percent


class DiffPolicy(_PolicyGate):
    kind: Literal["diff"]
    percent: _Percent


EarlyStoppingPolicy = Annotated[
    MedianPolicy | AveragePolicy | TruncationPolicy | DiffPolicy,
    Field(discriminator="kind"),
]
_POLICY_MODELS: dict[str, type[_Model]] = {
    "median": MedianPolicy,
    "average": AveragePolicy,
    "truncation": TruncationPolicy,
    "diff": DiffPolicy,
}


class EarlyStoppingEntry(_Model):
    metric: _Name
    value: float
    optimization: Optimization = "maximize"
    policy: EarlyStoppingPolicy | None = None

    @field_validator("policy", mode="before")
    @classmethod
    def _normalize_kind(cls, policy: Any) -> Any:
        # The discriminator needs the exact tag, so the three spellings are folded
        # here; a bad kind is reported at `policy.kind`, not at `policy`.
        if not isinstance(policy, dict):
            return policy
        if "kind" not in policy:
            _raise_at([(("kind",), "missing", "Field required", policy)])
        try:
            kind = _normalize_policy_kind(policy["kind"])
        except PydanticCustomError as exc:
            _raise_at([(("kind",), exc.type, exc.message(), policy["kind"])])
        # Validating here (rather than through a tagged union) keeps the tag out of
        # error paths: `policy.percent`, not `policy.truncation.percent`.
        return _POLICY_MODELS[kind].model_validate({**policy, "kind": kind})


class FailureEarlyStopping(_Model):
    """hpo-engine extension: stop the group once this share of trials has failed."""

    percent: Annotated[float, Field(gt=0, le=100)]


# --------------------------------------------------------------------------- hptuning

_ALGORITHM_FIELDS: dict[str, Algorithm] = {
    # Polyaxon's resolution order; only one may be set, so it matters only for
    # callers that read a model built without validation.
    "random_search": "random",
    "hyperband": "hyperband",
    "grid_search": "grid",
    "bo": "bo",
    "tpe": "tpe",
    "mapping": "mapping",
}


def _mark_matrix_required(schema: dict[str, Any]) -> None:
    # `matrix` has a None default only so that its absence gets our own message
    # (and so that a `mapping` group can leave it out).
    schema.get("properties", {}).get("matrix", {}).pop("default", None)


_Scalar = int | float | str | bool


class MappingSearch(_Model):
    """hpo-engine extension (Polyaxon v1's `mapping`): an explicit list of configurations."""

    values: Annotated[
        list[Annotated[dict[Annotated[str, Field(min_length=1)], _Scalar], Field(min_length=1)]],
        Field(min_length=1, max_length=100_000),
    ]


class HPTuning(_Model):
    """The `hptuning` section of a Polyaxon 0.x group."""

    model_config = ConfigDict(json_schema_extra=_mark_matrix_required)

    concurrency: Annotated[int, Field(ge=1, le=100_000)] | None = None
    # numpy's RandomState accepts 0 .. 2**32 - 1; 0 is a seed like any other.
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    matrix: (
        Annotated[
            dict[Annotated[str, Field(min_length=1, max_length=200)], MatrixOption],
            Field(max_length=MAX_PARAMETERS),
        ]
        | None
    ) = Field(default=None, validate_default=True)
    grid_search: GridSearch | None = None
    random_search: RandomSearch | None = None
    hyperband: Hyperband | None = None
    bo: BayesianOptimization | None = None
    tpe: TPESearch | None = None
    mapping: MappingSearch | None = None
    early_stopping: list[EarlyStoppingEntry] | None = None
    failure_early_stopping: FailureEarlyStopping | None = None

    # The keys in the order the user wrote them, for normalized().
    _key_order: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("matrix", mode="before")
    @classmethod
    def _matrix_present(cls, matrix: Any) -> Any:
        if matrix is None:
            return None  # required unless a `mapping` lists the configurations: checked below
        if isinstance(matrix, dict) and not matrix:
            raise _error("too_short", "The matrix must define at least one parameter.")
        return matrix

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: Callable[[Any], HPTuning]) -> HPTuning:
        model = handler(data)
        if isinstance(data, dict):
            model._key_order = tuple(key for key in data if isinstance(key, str))
        elif isinstance(data, HPTuning):
            model._key_order = data._key_order
        return model

    @model_validator(mode="after")
    def _check_combinations(self) -> HPTuning:
        errors: list[tuple[tuple[str | int, ...], str, str, Any]] = []
        chosen = [name for name in _ALGORITHM_FIELDS if getattr(self, name) is not None]
        if len(chosen) > 1:
            errors.append(((), "algorithm", "Only one search algorithm can be used.", chosen))
        if self.matrix is None and self.mapping is None:
            errors.append((("matrix",), "missing", _MATRIX_REQUIRED_MESSAGE, None))
        if self.matrix is not None and self.mapping is not None:
            errors.append(
                (
                    ("matrix",),
                    "matrix_with_mapping",
                    "A `mapping` lists its configurations itself; leave out the matrix.",
                    None,
                )
            )
        if errors:
            _raise_at(errors)
        if self.algorithm == "grid":
            for key, option in self.matrix.items():
                if option.is_distribution:
                    errors.append(
                        (
                            ("matrix", key),
                            "grid_distribution",
                            f"`{key}` defines a distribution, and it cannot be used with "
                            "grid search.",
                            option.normalized(),
                        )
                    )
        # Unlike Polyaxon, bo takes every matrix kind, so there is no bo check here.
        if self.hyperband is not None and self.hyperband.resource.name in (self.matrix or {}):
            name = self.hyperband.resource.name
            errors.append(
                (
                    ("hyperband", "resource", "name"),
                    "resource_in_matrix",
                    f"`{name}` is the hyperband resource, so it cannot also be in the matrix.",
                    name,
                )
            )
        if errors:
            _raise_at(errors)
        return self

    @property
    def algorithm(self) -> Algorithm:
        """`grid`, `random`, `hyperband`, `bo`, `tpe` or `mapping`; grid when none is set."""
        for name, algorithm in _ALGORITHM_FIELDS.items():
            if getattr(self, name) is not None:
                return algorithm
        return "grid"

    def normalized(self) -> dict[str, Any]:
        """The section as plain JSON-able data, for storage and for the algorithms.

        Keys keep the user's order (the matrix order decides grid order), None
        fields are dropped, matrix options are normalised, and a grid search
        gets an explicit `grid_search: {}` as Polyaxon stores it.
        """
        dumped = self.model_dump(mode="json", exclude_none=True, exclude={"matrix"})
        if self.matrix is not None:
            dumped["matrix"] = {key: option.normalized() for key, option in self.matrix.items()}
        names = [key for key in self._key_order if key in type(self).model_fields]
        names += [key for key in type(self).model_fields if key not in names]
        result = {name: dumped[name] for name in names if name in dumped}
        if self.algorithm == "grid" and "grid_search" not in result:
            result["grid_search"] = {}
        return result

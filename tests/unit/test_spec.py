"""The hptuning schema (app.schemas.spec) and request documents (app.schemas.documents)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from app.schemas.documents import (
    GroupRequest,
    SpecError,
    UnsupportedMediaTypeError,
    parse_group_document,
    validate_group_document,
)
from app.schemas.spec import CONTINUOUS_OPTIONS, MATRIX_OPTIONS, HPTuning, MatrixOption

ONE_OPTION = "Matrix element is not valid, one and only one option is required."

BO = {"n_initial_trials": 2, "n_iterations": 3, "metric": {"name": "loss"}}
HYPERBAND = {
    "max_iter": 81,
    "eta": 3,
    "resource": {"name": "epochs"},
    "metric": {"name": "accuracy"},
}


# --------------------------------------------------------------------------- helpers


def normalized(option: Any) -> dict[str, Any]:
    return MatrixOption.model_validate(option).normalized()


def option_error(option: Any) -> tuple[tuple[Any, ...], str]:
    """The single error of one matrix option, as (loc, message)."""
    with pytest.raises(ValidationError) as info:
        MatrixOption.model_validate(option)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


def spec_errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        HPTuning.model_validate(data)
    return [(error["loc"], error["msg"]) for error in info.value.errors()]


def spec(matrix: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """An hptuning dict with a one-key discrete matrix unless told otherwise."""
    return {"matrix": matrix or {"lr": {"values": [0.1, 0.2]}}, **sections}


def document_errors(body: str | bytes, content_type: str | None = None) -> list[dict[str, str]]:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(SpecError) as info:
        parse_group_document(raw, content_type)
    return info.value.errors


def paths(errors: list[dict[str, str]]) -> list[str]:
    return [error["path"] for error in errors]


# --------------------------------------------------------------------------- matrix forms

# (option, numbers in layout order, expected normalised dict)
NUMERIC_FORMS: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("range", [1, 10, 2], {"start": 1, "stop": 10, "step": 2}),
    ("linspace", [0.001, 0.1, 5], {"start": 0.001, "stop": 0.1, "num": 5}),
    ("logspace", [0.01, 0.1, 5], {"start": 0.01, "stop": 0.1, "num": 5, "base": 10}),
    ("logspace", [0, 3, 4, 2], {"start": 0, "stop": 3, "num": 4, "base": 2}),
    ("geomspace", [1, 100, 3], {"start": 1, "stop": 100, "num": 3}),
    ("uniform", [0, 1], {"low": 0, "high": 1}),
    ("uniform", [0, 1, 5], {"low": 0, "high": 1, "size": 5}),
    ("quniform", [0, 10, 2], {"low": 0, "high": 10, "q": 2}),
    ("quniform", [0, 10, 2, 3], {"low": 0, "high": 10, "q": 2, "size": 3}),
    ("loguniform", [-5, 0], {"low": -5, "high": 0}),
    ("loguniform", [-5, 0, 2], {"low": -5, "high": 0, "size": 2}),
    ("qloguniform", [0, 5, 1], {"low": 0, "high": 5, "q": 1}),
    ("qloguniform", [0, 5, 1, 4], {"low": 0, "high": 5, "q": 1, "size": 4}),
    ("normal", [66, 30], {"loc": 66, "scale": 30}),
    ("normal", [0, 1, 7], {"loc": 0, "scale": 1, "size": 7}),
    ("qnormal", [0, 1, 0.5], {"loc": 0, "scale": 1, "q": 0.5}),
    ("qnormal", [0, 1, 0.5, 2], {"loc": 0, "scale": 1, "q": 0.5, "size": 2}),
    ("lognormal", [0, 1], {"loc": 0, "scale": 1}),
    ("lognormal", [0, 1, 3], {"loc": 0, "scale": 1, "size": 3}),
    ("qlognormal", [0, 1, 1], {"loc": 0, "scale": 1, "q": 1}),
    ("qlognormal", [0, 1, 1, 3], {"loc": 0, "scale": 1, "q": 1, "size": 3}),
]


def _ids(case: tuple[str, list[Any], dict[str, Any]]) -> str:
    return f"{case[0]}-{len(case[1])}"


@pytest.mark.parametrize("case", NUMERIC_FORMS, ids=_ids)
@pytest.mark.parametrize("form", ["string", "list", "dict", "reversed-dict"])
def test_numeric_option_forms_normalise_alike(
    case: tuple[str, list[Any], dict[str, Any]], form: str
) -> None:
    option, numbers, expected = case
    if form == "string":
        raw: Any = ":".join(str(number) for number in numbers)
    elif form == "list":
        raw = list(numbers)
    else:
        names = list(expected)[: len(numbers)]
        pairs = list(zip(names, numbers, strict=True))
        raw = dict(reversed(pairs) if form == "reversed-dict" else pairs)
    result = normalized({option: raw})
    assert result == {option: expected}
    # Key order is the documented one, whatever order the user wrote.
    assert list(result[option]) == list(expected)
    assert [type(value) for value in result[option].values()] == [
        type(value) for value in expected.values()
    ]


def test_values_keep_their_order_and_types() -> None:
    result = normalized({"values": [3, "relu", True, 1.5, 1e-5, 0]})
    assert result == {"values": [3, "relu", True, 1.5, 1e-5, 0]}
    assert [type(item) for item in result["values"]] == [int, str, bool, float, float, int]


def test_pvalues_normalise_to_pairs() -> None:
    raw = {"pvalues": [["relu", 0.1], ["elu", 0.9]]}
    assert normalized(raw) == {"pvalues": [["relu", 0.1], ["elu", 0.9]]}


def test_pvalues_accept_a_sum_below_one_and_float_rounding() -> None:
    assert normalized({"pvalues": [["a", 0.5]]}) == {"pvalues": [["a", 0.5]]}
    assert normalized({"pvalues": [[1, 0.1], [2, 0.2], [3, 0.7]]})["pvalues"][2] == [3, 0.7]
    # A sum a hair above 1 (within 1e-9) is rounding, not a mistake.
    assert len(normalized({"pvalues": [["a", 0.5], ["b", 0.500000000001]]})["pvalues"]) == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1:10:2", (int, int, int)),
        ("0.1:1:3", (float, int, int)),
        ("0.5:2.5:0.5", (float, float, float)),
        ("1e-5:1:0.1", (float, int, float)),
        ([1.0, 10, 2], (float, int, int)),
        (["1", "10.0", "2"], (int, float, int)),
        (" 1 : 10 : 3 ", (int, int, int)),
    ],
)
def test_numbers_written_as_ints_stay_ints(raw: Any, expected: tuple[type, ...]) -> None:
    bounds = normalized({"range": raw})["range"]
    assert tuple(type(value) for value in bounds.values()) == expected


def test_string_elements_parse_like_numbers() -> None:
    assert normalized({"uniform": ["0", "1e1"]}) == {"uniform": {"low": 0, "high": 10.0}}


def test_normalised_options_validate_again_to_themselves() -> None:
    for option, numbers, _ in NUMERIC_FORMS:
        first = normalized({option: numbers})
        assert normalized(first) == first


def test_empty_entries_count_as_not_set() -> None:
    assert normalized({"values": [], "range": "1:3:1", "uniform": None}) == {
        "range": {"start": 1, "stop": 3, "step": 1}
    }


def test_model_dump_of_an_option_is_its_normalised_form() -> None:
    option = MatrixOption.model_validate({"range": "1:10:2"})
    assert option.model_dump() == {"range": {"start": 1, "stop": 10, "step": 2}}


@pytest.mark.parametrize("kind", MATRIX_OPTIONS)
def test_option_properties(kind: str) -> None:
    raw: dict[str, Any] = {
        "values": [1, 2],
        "pvalues": [[1, 0.5], [2, 0.5]],
        "range": "0:10:1",
        "linspace": "0:1:5",
        "logspace": "0:1:5",
        "geomspace": "1:10:5",
        "uniform": "0:1",
        "quniform": "0:1:0.1",
        "loguniform": "0:1",
        "qloguniform": "0:1:0.1",
        "normal": "0:1",
        "qnormal": "0:1:0.1",
        "lognormal": "0:1",
        "qlognormal": "0:1:0.1",
    }
    option = MatrixOption.model_validate({kind: raw[kind]})
    assert option.kind == kind
    assert option.is_continuous is (kind in CONTINUOUS_OPTIONS)
    assert option.is_distribution is (kind == "pvalues" or kind in CONTINUOUS_OPTIONS)


# --------------------------------------------------------------------------- matrix rejections


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"values": []},
        {"values": None},
        {"values": [1], "range": "1:10:2"},
        {"uniform": "0:1", "normal": "0:1", "values": [1]},
        [1, 2],
        0.1,
    ],
)
def test_zero_or_several_options_are_rejected(raw: Any) -> None:
    loc, message = option_error(raw)
    assert loc == ()
    assert message.startswith(ONE_OPTION)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"range": "1:10"}, "range requires 3 elements, received 2"),
        ({"range": [1, 10, 2, 3]}, "range requires 3 elements, received 4"),
        ({"linspace": [0, 1]}, "linspace requires 3 elements, received 2"),
        ({"geomspace": "1:2:3:4"}, "geomspace requires 3 elements, received 4"),
        ({"logspace": "0:1"}, "logspace requires 3 or 4 elements, received 2"),
        ({"logspace": [0, 1, 2, 3, 4]}, "logspace requires 3 or 4 elements, received 5"),
        ({"uniform": "0"}, "uniform requires 2 or 3 elements, received 1"),
        ({"uniform": [0, 1, 2, 3]}, "uniform requires 2 or 3 elements, received 4"),
        ({"quniform": "0:1"}, "quniform requires 3 or 4 elements, received 2"),
        ({"normal": [0, 1, 2, 3]}, "normal requires 2 or 3 elements, received 4"),
        ({"qlognormal": "0:1:1:1:1"}, "qlognormal requires 3 or 4 elements, received 5"),
    ],
)
def test_wrong_element_counts(raw: dict[str, Any], message: str) -> None:
    loc, received = option_error(raw)
    assert loc == (next(iter(raw)),)
    assert received == message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"range": {"start": 1, "stop": 10}}, "missing: step"),
        ({"uniform": {"low": 0}}, "missing: high"),
        ({"range": {"start": 1, "stop": 10, "step": 1, "size": 2}}, "does not accept the key"),
        ({"normal": {"mean": 0, "scale": 1}}, "does not accept the key 'mean'"),
        ({"range": 5}, "must be a 'start:stop:step' string, a list or a mapping"),
    ],
)
def test_bad_dict_and_type_forms(raw: dict[str, Any], fragment: str) -> None:
    _, message = option_error(raw)
    assert fragment in message


@pytest.mark.parametrize(
    "raw",
    [
        {"range": "a:10:1"},
        {"range": [True, 10, 1]},
        {"uniform": [0, False]},
        {"uniform": [[0], 1]},
        {"uniform": [None, 1]},
        {"linspace": "0:1:five"},
        {"normal": "0:inf"},
        {"uniform": "0x1:2"},
        {"range": "1::2"},
    ],
)
def test_non_numeric_elements(raw: dict[str, Any]) -> None:
    loc, message = option_error(raw)
    assert loc == (next(iter(raw)),)
    assert "must be a number" in message


def test_non_finite_elements() -> None:
    _, message = option_error({"uniform": [float("-inf"), 1]})
    assert message == "`low` must be a finite number, received -inf"


@pytest.mark.parametrize("option", ["range", "linspace", "logspace", "geomspace"])
@pytest.mark.parametrize("bounds", [(5, 1), (2, 2)])
def test_spaces_need_start_below_stop(option: str, bounds: tuple[int, int]) -> None:
    _, message = option_error({option: [*bounds, 1]})
    assert message.startswith("`stop` must be strictly greater than `start`")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"range": "0:10:0"}, "`step` must not be 0"),
        ({"linspace": "0:1:0"}, "`num` must not be 0"),
        ({"logspace": "0:1:0"}, "`num` must not be 0"),
        ({"geomspace": "1:2:0"}, "`num` must not be 0"),
        ({"quniform": "0:1:0"}, "`q` must not be 0"),
        ({"qloguniform": "0:1:0"}, "`q` must not be 0"),
        ({"qnormal": "0:1:0"}, "`q` must not be 0"),
        ({"qlognormal": "0:1:0.0"}, "`q` must not be 0"),
    ],
)
def test_zero_step_num_q(raw: dict[str, Any], message: str) -> None:
    assert option_error(raw)[1] == message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"range": "0:10:-1"}, "`step` must be greater than 0"),
        ({"linspace": "0:1:2.5"}, "`num` must be a positive integer, received 2.5"),
        ({"logspace": "0:1:-3"}, "`num` must be a positive integer"),
        ({"quniform": "0:1:-0.1"}, "`q` must be greater than 0"),
        ({"uniform": "0:1:0"}, "`size` must be a positive integer"),
        ({"normal": "0:1:1.5"}, "`size` must be a positive integer"),
        ({"logspace": "0:1:3:1"}, "`base` must be greater than 0 and not 1"),
        ({"logspace": "0:1:3:-2"}, "`base` must be greater than 0 and not 1"),
        ({"geomspace": "-1:10:3"}, "geomspace requires `start` and `stop` greater than 0"),
        ({"geomspace": "0:10:3"}, "geomspace requires `start` and `stop` greater than 0"),
        ({"range": [0, 10**7, 1]}, "more than 1000000 values"),
        ({"range": "0:1e308:1e-308"}, "more than 1000000 values"),
        ({"linspace": [0, 1, 10**7]}, "more than 1000000 values"),
        ({"range": [0, 2**60, 2**55]}, "too large"),
    ],
)
def test_other_bound_checks(raw: dict[str, Any], fragment: str) -> None:
    assert fragment in option_error(raw)[1]


@pytest.mark.parametrize("option", ["uniform", "quniform", "loguniform", "qloguniform"])
@pytest.mark.parametrize("bounds", [(1, 0), (1, 1)])
def test_uniform_likes_need_low_below_high(option: str, bounds: tuple[int, int]) -> None:
    numbers = [*bounds, 1] if option.startswith("q") else list(bounds)
    _, message = option_error({option: numbers})
    assert message.startswith("`high` must be strictly greater than `low`")


@pytest.mark.parametrize("option", ["normal", "qnormal", "lognormal", "qlognormal"])
@pytest.mark.parametrize("scale", [0, -1])
def test_normal_likes_need_a_positive_scale(option: str, scale: int) -> None:
    numbers = [0, scale, 1] if option.startswith("q") else [0, scale]
    assert option_error({option: numbers})[1].startswith("`scale` must be greater than 0")


@pytest.mark.parametrize("raw", ["66:30", [66.0, 30.0], {"loc": 66, "scale": 30}, "-5:1"])
def test_normal_has_no_order_check(raw: Any) -> None:
    # Polyaxon issue #516: loc above scale is a valid normal distribution.
    assert normalized({"normal": raw})["normal"]["scale"] in (30, 30.0, 1)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"values": [1, [2]]}, "values[1] must be a number, a string or a boolean"),
        ({"values": [{"a": 1}]}, "values[0] must be a number, a string or a boolean"),
        ({"values": [None, 1]}, "values[0] must be a number, a string or a boolean"),
        ({"values": "a,b"}, "values must be a list"),
        ({"values": [float("nan")]}, "must be a finite number"),
    ],
)
def test_bad_values(raw: dict[str, Any], fragment: str) -> None:
    loc, message = option_error(raw)
    assert loc == ("values",)
    assert fragment in message


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        ([["a", 1]], "must be a float"),
        ([["a", 0], ["b", 0.5]], "must be a float"),
        ([["a", True]], "must be a float"),
        ([["a", "0.5"]], "must be a float"),
        ([["a", 1.0]], "at least 0 and below 1"),
        ([["a", -0.1]], "at least 0 and below 1"),
        ([["a", 0.6], ["b", 0.6]], "The distribution of different outcomes should sum to 1."),
        ([["a", 0.5, 0.1]], "must be a [value, probability] pair"),
        (["a"], "must be a [value, probability] pair"),
        ([[["a"], 0.5]], "must be a number, a string or a boolean"),
        ("a:0.5", "pvalues must be a list"),
    ],
)
def test_bad_pvalues(pairs: Any, fragment: str) -> None:
    loc, message = option_error({"pvalues": pairs})
    assert loc == ("pvalues",)
    assert fragment in message


def test_unknown_key_in_an_option() -> None:
    loc, message = option_error({"valeus": [1, 2]})
    assert loc == ("valeus",)
    assert message == "Extra inputs are not permitted"


# --------------------------------------------------------------------------- hptuning


def test_matrix_is_required() -> None:
    for data in ({}, {"matrix": None}, {"random_search": {"n_experiments": 2}}):
        assert (("matrix",), "A matrix definition is required for group specification.") in (
            spec_errors(data)
        )
    assert spec_errors({"matrix": {}}) == [
        (("matrix",), "The matrix must define at least one parameter.")
    ]


def test_matrix_option_error_paths() -> None:
    assert spec_errors(spec({"lr": {"uniform": "1:0"}}, random_search={})) == [
        (
            ("matrix", "lr", "uniform"),
            "`high` must be strictly greater than `low`, received low=1, high=0",
        )
    ]
    assert spec_errors(spec({"lr": {"values": [1], "range": "1:3:1"}})) == [
        (("matrix", "lr"), ONE_OPTION)
    ]


@pytest.mark.parametrize("grid", [{}, {"grid_search": {}}, {"grid_search": {"n_experiments": 4}}])
def test_grid_rejects_distributions(grid: dict[str, Any]) -> None:
    matrix = {
        "lr": {"uniform": "0:1"},
        "layers": {"values": [1, 2]},
        "act": {"pvalues": [["relu", 0.5], ["elu", 0.5]]},
    }
    assert spec_errors(spec(matrix, **grid)) == [
        (("matrix", "lr"), "`lr` defines a distribution, and it cannot be used with grid search."),
        (
            ("matrix", "act"),
            "`act` defines a distribution, and it cannot be used with grid search.",
        ),
    ]


@pytest.mark.parametrize(
    "algorithm",
    [
        {"random_search": {"n_experiments": 5}},
        {"hyperband": HYPERBAND},
        {"bo": BO},
    ],
)
def test_other_algorithms_take_every_matrix_kind(algorithm: dict[str, Any]) -> None:
    # hpo-engine's BO handles every kind, unlike Polyaxon's (uniform only).
    matrix = {
        "a": {"loguniform": "-5:0"},
        "b": {"pvalues": [["x", 0.5], ["y", 0.5]]},
        "c": {"qnormal": "0:1:0.5"},
        "d": {"values": ["relu", "tanh"]},
        "e": {"logspace": "0:2:3"},
    }
    assert list(HPTuning.model_validate(spec(matrix, **algorithm)).matrix) == list(matrix)


@pytest.mark.parametrize(
    "sections",
    [
        {"grid_search": {}, "random_search": {"n_experiments": 2}},
        {"random_search": {}, "bo": BO},
        {"hyperband": HYPERBAND, "bo": BO, "grid_search": {}},
    ],
)
def test_only_one_algorithm(sections: dict[str, Any]) -> None:
    assert spec_errors(spec(**sections)) == [((), "Only one search algorithm can be used.")]


@pytest.mark.parametrize(
    ("sections", "algorithm"),
    [
        ({}, "grid"),
        ({"grid_search": {"n_experiments": 3}}, "grid"),
        ({"random_search": {"n_experiments": 3}}, "random"),
        ({"hyperband": HYPERBAND}, "hyperband"),
        ({"bo": BO}, "bo"),
    ],
)
def test_algorithm_resolution(sections: dict[str, Any], algorithm: str) -> None:
    assert HPTuning.model_validate(spec(**sections)).algorithm == algorithm


def test_seed_zero_is_a_seed() -> None:
    tuning = HPTuning.model_validate(spec(seed=0))
    assert tuning.seed == 0
    assert tuning.normalized()["seed"] == 0


@pytest.mark.parametrize(
    ("sections", "loc"),
    [
        ({"seed": True}, ("seed",)),
        ({"seed": -1}, ("seed",)),
        ({"seed": "7"}, ("seed",)),
        ({"seed": 2**32}, ("seed",)),
        ({"concurrency": 0}, ("concurrency",)),
        ({"concurrency": 2.0}, ("concurrency",)),
        ({"grid_search": {"n_experiments": 0}}, ("grid_search", "n_experiments")),
        ({"random_search": {"n_experiments": 0}}, ("random_search", "n_experiments")),
        ({"random_search": {"n_experiments": True}}, ("random_search", "n_experiments")),
        ({"hyperband": {**HYPERBAND, "eta": 1}}, ("hyperband", "eta")),
        ({"hyperband": {**HYPERBAND, "max_iter": 0}}, ("hyperband", "max_iter")),
        ({"hyperband": {**HYPERBAND, "resume": "yes"}}, ("hyperband", "resume")),
        ({"hyperband": {**HYPERBAND, "asynchronous": 1}}, ("hyperband", "asynchronous")),
        ({"hyperband": {**HYPERBAND, "resource": {}}}, ("hyperband", "resource", "name")),
        ({"bo": {**BO, "n_initial_trials": 0}}, ("bo", "n_initial_trials")),
        ({"bo": {**BO, "n_iterations": -1}}, ("bo", "n_iterations")),
        ({"bo": {**BO, "metric": {"name": ""}}}, ("bo", "metric", "name")),
        ({"failure_early_stopping": {"percent": 0}}, ("failure_early_stopping", "percent")),
        ({"failure_early_stopping": {"percent": 101}}, ("failure_early_stopping", "percent")),
        ({"early_stopping": {"metric": "a"}}, ("early_stopping",)),
    ],
)
def test_field_rejections(sections: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert [error[0] for error in spec_errors(spec(**sections))] == [loc]


def test_missing_required_algorithm_fields() -> None:
    errors = spec_errors(spec(hyperband={"max_iter": 9}))
    assert [loc for loc, _ in errors] == [
        ("hyperband", "eta"),
        ("hyperband", "resource"),
        ("hyperband", "metric"),
    ]


def test_hyperband_defaults() -> None:
    tuning = HPTuning.model_validate(spec(hyperband=HYPERBAND))
    assert tuning.normalized()["hyperband"] == {
        "max_iter": 81,
        "eta": 3.0,
        "resource": {"name": "epochs", "type": "float"},
        "metric": {"name": "accuracy", "optimization": "maximize"},
        "resume": False,
        "asynchronous": False,
    }


def test_hyperband_resource_cannot_be_in_the_matrix() -> None:
    matrix = {"epochs": {"values": [1, 2]}}
    assert spec_errors(spec(matrix, hyperband=HYPERBAND)) == [
        (
            ("hyperband", "resource", "name"),
            "`epochs` is the hyperband resource, so it cannot also be in the matrix.",
        )
    ]


@pytest.mark.parametrize(
    ("utility", "loc", "message"),
    [
        ({}, "kappa", "the acquisition function `ucb` requires a parameter `kappa`"),
        (
            {"acquisition_function": "ucb", "eps": 0.1},
            "kappa",
            "the acquisition function `ucb` requires a parameter `kappa`",
        ),
        ({"acquisition_function": "ei"}, "eps", "the acquisition function `ei` requires a "),
        ({"acquisition_function": "POI"}, "eps", "the acquisition function `poi` requires a "),
    ],
)
def test_acquisition_function_parameters(utility: dict[str, Any], loc: str, message: str) -> None:
    errors = spec_errors(spec(bo={**BO, "utility_function": utility}))
    assert len(errors) == 1
    assert errors[0][0] == ("bo", "utility_function", loc)
    assert errors[0][1].startswith(message)


def test_complete_utility_function() -> None:
    utility = {
        "acquisition_function": "EI",
        "eps": 0.01,
        "gaussian_process": {"kernel": "RBF", "length_scale": 2},
        "n_warmup": 100,
    }
    tuning = HPTuning.model_validate(spec(bo={**BO, "utility_function": utility}))
    assert tuning.normalized()["bo"]["utility_function"] == {
        "acquisition_function": "ei",
        "eps": 0.01,
        "gaussian_process": {
            "kernel": "rbf",
            "length_scale": 2.0,
            "nu": 1.5,
            "n_restarts_optimizer": 0,
        },
        "n_warmup": 100,
    }


@pytest.mark.parametrize("spelling", ["maximize", "MAXIMIZE", "Maximize"])
def test_enum_spellings_are_accepted_and_lowered(spelling: str) -> None:
    tuning = HPTuning.model_validate(
        spec(
            bo={**BO, "metric": {"name": "acc", "optimization": spelling}},
            early_stopping=[{"metric": "acc", "value": 0.9, "optimization": spelling}],
        )
    )
    assert tuning.bo is not None
    assert tuning.bo.metric.optimization == "maximize"
    assert tuning.normalized()["early_stopping"][0]["optimization"] == "maximize"


@pytest.mark.parametrize(
    ("sections", "loc"),
    [
        ({"bo": {**BO, "metric": {"name": "a", "optimization": "mAximize"}}}, "bo.metric"),
        ({"bo": {**BO, "metric": {"name": "a", "optimization": "max"}}}, "bo.metric"),
        ({"early_stopping": [{"metric": "a", "value": 1, "optimization": 1}]}, "early"),
        (
            {"bo": {**BO, "utility_function": {"acquisition_function": "uCB", "kappa": 1}}},
            "bo.utility_function",
        ),
        (
            {"hyperband": {**HYPERBAND, "resource": {"name": "epochs", "type": "integer"}}},
            "hyperband.resource",
        ),
    ],
)
def test_bad_enum_spellings(sections: dict[str, Any], loc: str) -> None:
    errors = spec_errors(spec(**sections))
    assert len(errors) == 1
    assert ".".join(str(part) for part in errors[0][0]).startswith(loc)
    assert "Input should be one of '" in errors[0][1]
    assert "(lower case, UPPER case or Capitalized)" in errors[0][1]


def test_other_enums_in_three_spellings() -> None:
    tuning = HPTuning.model_validate(
        spec(
            hyperband={**HYPERBAND, "resource": {"name": "epochs", "type": "INT"}},
            early_stopping=[
                {"metric": "a", "value": 1, "policy": {"kind": "MEDIAN", "evaluation_interval": 1}}
            ],
        )
    )
    normalized_spec = tuning.normalized()
    assert normalized_spec["hyperband"]["resource"]["type"] == "int"
    assert normalized_spec["early_stopping"][0]["policy"] == {
        "kind": "median",
        "evaluation_interval": 1,
    }


@pytest.mark.parametrize(
    "policy",
    [
        {"kind": "median", "evaluation_interval": 2, "min_interval": 3, "min_samples": 4},
        {"kind": "average", "evaluation_interval": 1},
        {"kind": "truncation", "percent": 20.0, "evaluation_interval": 1},
        {"kind": "diff", "percent": 5.0, "evaluation_interval": 3, "min_samples": 2},
    ],
)
def test_early_stopping_policies(policy: dict[str, Any]) -> None:
    entry = {"metric": "loss", "value": 0.1, "optimization": "minimize", "policy": policy}
    result = HPTuning.model_validate(spec(early_stopping=[entry])).normalized()
    assert result["early_stopping"] == [entry]


@pytest.mark.parametrize(
    ("policy", "loc"),
    [
        ({"kind": "mean", "evaluation_interval": 1}, ("policy", "kind")),
        ({"evaluation_interval": 1}, ("policy", "kind")),
        ({"kind": "truncation", "percent": 100, "evaluation_interval": 1}, ("policy", "percent")),
        ({"kind": "diff", "percent": 0, "evaluation_interval": 1}, ("policy", "percent")),
        ({"kind": "median"}, ("policy", "evaluation_interval")),
        ({"kind": "median", "evaluation_interval": 0}, ("policy", "evaluation_interval")),
        (
            {"kind": "average", "evaluation_interval": 1, "min_samples": 0},
            ("policy", "min_samples"),
        ),
        ({"kind": "median", "evaluation_interval": 1, "every": 2}, ("policy", "every")),
        ("median", ("policy",)),
    ],
)
def test_bad_early_stopping_policies(policy: Any, loc: tuple[str, ...]) -> None:
    entry = {"metric": "loss", "value": 0.1, "policy": policy}
    assert [error[0] for error in spec_errors(spec(early_stopping=[entry]))] == [
        ("early_stopping", 0, *loc)
    ]


def test_early_stopping_entry_requires_metric_and_value() -> None:
    errors = spec_errors(spec(early_stopping=[{"metric": "a", "value": 1}, {}]))
    assert [loc for loc, _ in errors] == [
        ("early_stopping", 1, "metric"),
        ("early_stopping", 1, "value"),
    ]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({**spec(), "matrx": {}}, ("matrx",)),
        (spec({"lr": {"values": [1], "size": 2}}), ("matrix", "lr", "size")),
        (
            spec(hyperband={**HYPERBAND, "resource": {"name": "e", "kind": "int"}}),
            ("hyperband", "resource", "kind"),
        ),
        (spec(random_search={"n_experiments": 2, "seed": 1}), ("random_search", "seed")),
        (
            spec(bo={**BO, "utility_function": {"kappa": 1, "gaussian_process": {"foo": 1}}}),
            ("bo", "utility_function", "gaussian_process", "foo"),
        ),
        (
            spec(early_stopping=[{"metric": "a", "value": 1, "threshold": 2}]),
            ("early_stopping", 0, "threshold"),
        ),
    ],
)
def test_unknown_keys_are_errors_with_their_path(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    assert spec_errors(data) == [(loc, "Extra inputs are not permitted")]


def test_normalized_keeps_the_users_key_order() -> None:
    data = {
        "seed": 3,
        "matrix": {
            "z": {"values": [1, 2]},
            "a": {"range": "1:10:2"},
            "m": {"uniform": [0, 1]},
        },
        "concurrency": 2,
        "random_search": {"n_experiments": 5},
    }
    result = HPTuning.model_validate(data).normalized()
    assert list(result) == ["seed", "matrix", "concurrency", "random_search"]
    assert list(result["matrix"]) == ["z", "a", "m"]
    assert result == {
        "seed": 3,
        "matrix": {
            "z": {"values": [1, 2]},
            "a": {"range": {"start": 1, "stop": 10, "step": 2}},
            "m": {"uniform": {"low": 0, "high": 1}},
        },
        "concurrency": 2,
        "random_search": {"n_experiments": 5},
    }
    json.dumps(result)


def test_normalized_adds_grid_search_only_for_implicit_grid() -> None:
    assert HPTuning.model_validate(spec()).normalized() == {
        "matrix": {"lr": {"values": [0.1, 0.2]}},
        "grid_search": {},
    }
    explicit = HPTuning.model_validate(spec(grid_search={"n_experiments": 3})).normalized()
    assert explicit["grid_search"] == {"n_experiments": 3}
    assert "grid_search" not in HPTuning.model_validate(spec(bo=BO)).normalized()


def test_normalized_validates_to_itself() -> None:
    data = spec(
        {"b": {"logspace": "0:2:3"}, "a": {"pvalues": [["x", 0.25], ["y", 0.75]]}},
        bo={**BO, "utility_function": {"kappa": 2.5}},
        early_stopping=[{"metric": "loss", "value": 0.1}],
        concurrency=4,
        seed=0,
    )
    first = HPTuning.model_validate(data).normalized()
    assert HPTuning.model_validate(first).normalized() == first


def test_random_search_without_n_experiments_passes_the_schema() -> None:
    # Polyaxon requires it only at run time; the schema leaves it optional.
    assert HPTuning.model_validate(spec(random_search={})).algorithm == "random"


# --------------------------------------------------------------------------- documents

POLYAXONFILE = """
version: 1
kind: group
description: trains a small net
tags: [mnist]
environment:
  resources: {gpu: {requests: 1}}
build:
  image: tensorflow/tensorflow:1.4.1
  build_steps: [pip install polyaxon-client]
params:
  batch_size: 128
run:
  cmd: python train.py --lr={{ lr }} --batch-size={{ batch_size }}
hptuning:
  concurrency: 2
  random_search:
    n_experiments: 10
  matrix:
    lr:
      logspace: 0.01:0.1:5
    dropout:
      uniform: 0:0.5
"""


def test_wrapper_document_in_json() -> None:
    body = {
        "name": "mnist",
        "description": "first try",
        "objective": {"name": "loss", "optimization": "MINIMIZE"},
        "lease_seconds": 600,
        "hptuning": {"matrix": {"lr": {"values": [0.1, 1e-5]}}},
    }
    request = parse_group_document(json.dumps(body).encode(), "application/json")
    assert isinstance(request, GroupRequest)
    assert request.name == "mnist"
    assert request.objective is not None
    assert request.objective.optimization == "minimize"
    assert request.lease_seconds == 600
    assert request.hptuning.normalized() == {
        "matrix": {"lr": {"values": [0.1, 1e-5]}},
        "grid_search": {},
    }


def test_wrapper_document_in_yaml_reads_yaml12_scalars() -> None:
    body = (
        "name: g\nhptuning:\n  matrix:\n    n: {range: 1:10:2}\n    f: {values: [yes, no, 1e-5]}\n"
    )
    request = parse_group_document(body.encode(), "application/x-yaml")
    assert request.hptuning.normalized()["matrix"] == {
        "n": {"range": {"start": 1, "stop": 10, "step": 2}},
        "f": {"values": ["yes", "no", 1e-5]},
    }


def test_bare_hptuning_section() -> None:
    request = parse_group_document(b"seed: 0\nmatrix:\n  lr: {values: [1, 2]}\n", None)
    assert request.hptuning.seed == 0
    assert request.name is None


def test_bare_section_may_carry_wrapper_keys() -> None:
    request = parse_group_document(b"name: x\nmatrix:\n  lr: {values: [1]}\n", "text/yaml")
    assert request.name == "x"


def test_bare_section_errors_are_under_hptuning() -> None:
    errors = document_errors("matrix:\n  lr: {uniform: 1:0}\nrandom_search: {}\nfoo: 1\n")
    assert paths(errors) == ["hptuning.matrix.lr.uniform", "hptuning.foo"]


def test_polyaxonfile_reads_only_hptuning() -> None:
    request = parse_group_document(POLYAXONFILE.encode(), "application/yaml")
    assert request.description == "trains a small net"
    assert request.hptuning.algorithm == "random"
    assert request.hptuning.normalized() == {
        "concurrency": 2,
        "random_search": {"n_experiments": 10},
        "matrix": {
            "lr": {"logspace": {"start": 0.01, "stop": 0.1, "num": 5, "base": 10}},
            "dropout": {"uniform": {"low": 0, "high": 0.5}},
        },
    }


@pytest.mark.parametrize("kind", ["group", "GROUP", "Group"])
def test_polyaxonfile_kind_group_spellings(kind: str) -> None:
    body = POLYAXONFILE.replace("kind: group", f"kind: {kind}")
    assert parse_group_document(body.encode(), None).hptuning.concurrency == 2


def test_polyaxonfile_of_another_kind() -> None:
    errors = document_errors(POLYAXONFILE.replace("kind: group", "kind: experiment"))
    assert paths(errors) == ["kind"]
    assert "kind: group" in errors[0]["message"]


def test_polyaxonfile_without_hptuning() -> None:
    errors = document_errors("version: 1\nkind: group\nrun:\n  cmd: python train.py\n")
    assert errors == [
        {
            "path": "hptuning",
            "message": "A matrix definition is required for group specification.",
            "type": "missing",
        }
    ]


def test_polyaxonfile_kind_alone_marks_the_shape() -> None:
    body = "kind: group\nrun: {cmd: x}\nhptuning:\n  matrix: {lr: {values: [1]}}\n"
    assert parse_group_document(body.encode(), None).hptuning.algorithm == "grid"


@pytest.mark.parametrize("section", ["params", "declarations"])
def test_param_in_both_static_params_and_matrix(section: str) -> None:
    body = POLYAXONFILE.replace("params:\n  batch_size: 128", f"{section}:\n  lr: 0.1")
    errors = document_errors(body)
    assert paths(errors) == [f"{section}.lr"]
    assert errors[0]["message"].startswith(f"`lr` is set both in {section} and in the matrix")


def test_wrapper_unknown_top_level_key() -> None:
    body = json.dumps({"hptuning": {"matrix": {"a": {"values": [1]}}}, "run": {}})
    errors = document_errors(body, "application/json")
    assert errors == [{"path": "run", "message": "Unknown key `run`.", "type": "extra_forbidden"}]


def test_wrapper_without_hptuning() -> None:
    errors = document_errors('{"name": "x"}', "application/json")
    assert paths(errors) == ["hptuning"]
    assert errors[0]["message"] == "A matrix definition is required for group specification."


@pytest.mark.parametrize(
    ("hptuning", "path"),
    [
        ({"matrix": {"lr": {"uniform": "0:1"}}}, "hptuning.matrix.lr"),
        ({"matrix": {"lr": {"uniform": "1:0"}}, "bo": BO}, "hptuning.matrix.lr.uniform"),
        ({"matrix": {"lr": {}}}, "hptuning.matrix.lr"),
        (
            {"matrix": {"lr": {"values": [1]}}, "early_stopping": [{"metric": "a"}]},
            "hptuning.early_stopping.0.value",
        ),
        (
            {"matrix": {"lr": {"values": [1]}}, "bo": {**BO, "utility_function": {}}},
            "hptuning.bo.utility_function.kappa",
        ),
        (
            {"matrix": {"lr": {"values": [1]}}, "random_search": {"n_experiments": 0}},
            "hptuning.random_search.n_experiments",
        ),
        (
            {"matrix": {"lr": {"values": [1]}}, "random_search": {}, "grid_search": {}},
            "hptuning",
        ),
        ({"matrix": {"lr": {"values": [1]}}, "seed": 1.5}, "hptuning.seed"),
    ],
)
def test_error_paths_as_strings(hptuning: dict[str, Any], path: str) -> None:
    body = json.dumps({"hptuning": hptuning})
    errors = document_errors(body, "application/json")
    assert paths(errors) == [path]
    for error in errors:
        assert not error["message"].startswith(("Value error", "Assertion failed"))
        assert error["type"]


@pytest.mark.parametrize(
    ("wrapper", "path"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"description": "x" * 5001}, "description"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"lease_seconds": 7 * 24 * 3600 + 1}, "lease_seconds"),
        ({"objective": {"name": "loss", "optimization": "mInimize"}}, "objective.optimization"),
        ({"objective": {"optimization": "minimize"}}, "objective.name"),
    ],
)
def test_wrapper_field_checks(wrapper: dict[str, Any], path: str) -> None:
    body = json.dumps({**wrapper, "hptuning": spec()})
    assert paths(document_errors(body, "application/json")) == [path]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/problem+json"],
)
def test_json_media_types_use_the_json_parser(content_type: str) -> None:
    body = json.dumps({"hptuning": spec()})
    assert parse_group_document(body.encode(), content_type).hptuning.algorithm == "grid"
    # YAML-only syntax is refused under a JSON media type.
    errors = document_errors("hptuning: {matrix: {lr: {values: [1]}}}", content_type)
    assert errors[0]["type"] == "invalid_json"


@pytest.mark.parametrize(
    "content_type",
    [None, "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"],
)
def test_yaml_media_types(content_type: str | None) -> None:
    body = b"hptuning:\n  matrix:\n    lr: {range: 1:10:2}\n"
    request = parse_group_document(body, content_type)
    assert request.hptuning.matrix["lr"].kind == "range"


def test_unsupported_media_type() -> None:
    with pytest.raises(UnsupportedMediaTypeError) as info:
        parse_group_document(b"<xml/>", "application/xml")
    assert info.value.errors[0]["path"] == ""
    assert info.value.errors[0]["type"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("body", "content_type", "error_type", "fragment"),
    [
        (b"\xff\xfe\x00", None, "invalid_encoding", "not valid UTF-8"),
        (b'{"hptuning": ', "application/json", "invalid_json", "line 1, column 14"),
        (b'{"a": 1,\n "b": }', "application/json", "invalid_json", "line 2, column 7"),
        (b'{"a": 1, "a": 2}', "application/json", "invalid_json", "duplicate key 'a'"),
        (b'{"a": NaN}', "application/json", "invalid_json", "NaN"),
        (b"a: [1, 2\nb: 3\n", None, "invalid_yaml", "line 2, column 2"),
        (b"a: 1\na: 2\n", "text/yaml", "invalid_yaml", "duplicate key 'a'"),
        (b"a: 1\n---\nb: 2\n", None, "invalid_yaml", "line 2"),
        (b"", None, "invalid_document", "empty"),
        (b"- 1\n- 2\n", None, "invalid_document", "not a list"),
        (b'"just text"', "application/json", "invalid_document", "not a string"),
        (b"[" * 100_000, "application/json", "invalid_json", "Invalid JSON"),
    ],
)
def test_bad_bodies(body: bytes, content_type: str | None, error_type: str, fragment: str) -> None:
    errors = document_errors(body, content_type)
    assert len(errors) == 1
    assert errors[0]["path"] == ""
    assert errors[0]["type"] == error_type
    assert fragment in errors[0]["message"]


def test_utf8_bom_is_tolerated() -> None:
    body = "\ufeff" + json.dumps({"hptuning": spec()})
    assert parse_group_document(body.encode(), "application/json").hptuning.algorithm == "grid"


def test_all_errors_are_reported_together() -> None:
    body = POLYAXONFILE.replace("kind: group", "kind: job").replace(
        "params:\n  batch_size: 128", "params:\n  dropout: 0.1"
    )
    body = body.replace("n_experiments: 10", "n_experiments: 0")
    assert paths(document_errors(body)) == [
        "kind",
        "params.dropout",
        "hptuning.random_search.n_experiments",
    ]


def test_validate_group_document_takes_parsed_data() -> None:
    request = validate_group_document({"hptuning": spec(seed=0)})
    assert request.hptuning.seed == 0


def test_spec_error_str_names_the_first_problem() -> None:
    error = SpecError([{"path": "hptuning.seed", "message": "bad", "type": "x"}] * 2)
    assert str(error) == "hptuning.seed: bad (and 1 more)"

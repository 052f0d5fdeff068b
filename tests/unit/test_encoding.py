"""The unit-cube encoding of search spaces: round trips, column ranges, snapping, refusals."""

import math
from typing import Any

import numpy as np
import pytest

from app.algorithms.encoding import CDF_CLIP, Encoder
from app.algorithms.space import Space

KINDS: dict[str, dict[str, Any]] = {
    "values_numeric": {"values": [0.5, 2, 8, 1]},
    "values_categorical": {"values": ["adam", "sgd", 3, None]},
    "values_bool": {"values": [True, False]},
    "pvalues": {"pvalues": [["relu", 0.3], ["tanh", 0.5], ["elu", 0.2]]},
    "range": {"range": {"start": 1, "stop": 20, "step": 3}},
    "linspace": {"linspace": {"start": 0.0, "stop": 1.0, "num": 6}},
    "logspace": {"logspace": {"start": -4, "stop": 0, "num": 5}},
    "geomspace": {"geomspace": {"start": 1, "stop": 256, "num": 9}},
    "uniform": {"uniform": {"low": -3.0, "high": 7.0}},
    "quniform": {"quniform": {"low": 0, "high": 100, "q": 5}},
    "loguniform": {"loguniform": {"low": -9.0, "high": -1.0}},
    "qloguniform": {"qloguniform": {"low": 0, "high": 5, "q": 2}},
    "normal": {"normal": {"loc": 1.0, "scale": 3.0}},
    "qnormal": {"qnormal": {"loc": 10.0, "scale": 4.0, "q": 0.5}},
    "lognormal": {"lognormal": {"loc": -1.0, "scale": 0.7}},
    "qlognormal": {"qlognormal": {"loc": 2.0, "scale": 0.5, "q": 0.25}},
}
ALL = Space.from_matrix(KINDS)


def same(a: Any, b: Any) -> bool:
    """Equal values of the same type; floats to 1e-9 (relative)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def allowed(space: Space, params: dict[str, Any]) -> bool:
    """Whether a configuration could have come from the space (quantized: on the grid)."""
    for p in space.params:
        value = params[p.name]
        if not p.is_continuous:
            if not any(same(value, v) for v in p.values):
                return False
        elif p.is_quantized:
            steps = value / p.args["q"]
            if not math.isclose(steps, round(steps), abs_tol=1e-6):
                return False
    return True


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_of_sampled_configurations(kind: str) -> None:
    space = Space.from_matrix({"p": KINDS[kind]})
    encoder = Encoder(space)
    for index in range(300):
        params = space.sample(seed=11, index=index)
        point = encoder.encode(params)
        assert point.shape == (encoder.dims,)
        assert np.all((point >= 0) & (point <= 1))
        decoded = encoder.decode(point)
        assert same(decoded["p"], params["p"]), (params, decoded)


@pytest.mark.parametrize(
    "kind",
    ["values_numeric", "values_categorical", "values_bool", "pvalues"]
    + ["range", "linspace", "logspace", "geomspace"],
)
def test_every_discrete_value_round_trips_with_its_type(kind: str) -> None:
    space = Space.from_matrix({"p": KINDS[kind]})
    encoder = Encoder(space)
    for value in space.params[0].values:
        assert same(encoder.decode(encoder.encode({"p": value}))["p"], value)


def test_all_kinds_together() -> None:
    encoder = Encoder(ALL)
    # One column per option, one-hot for the two categorical lists and pvalues.
    assert encoder.dims == len(KINDS) - 3 + 4 + 2 + 3
    assert [g.name for g in encoder.groups] == list(KINDS)
    assert encoder.bounds == [(0.0, 1.0)] * encoder.dims
    for index in range(200):
        params = ALL.sample(seed=3, index=index)
        decoded = encoder.decode(encoder.encode(params))
        assert all(same(decoded[k], params[k]) for k in params), (params, decoded)


def test_every_point_of_the_cube_decodes_to_an_allowed_configuration() -> None:
    encoder = Encoder(ALL)
    rng = np.random.default_rng(0)
    corners = np.array([np.zeros(encoder.dims), np.ones(encoder.dims)])
    for point in np.vstack([rng.random((300, encoder.dims)), corners]):
        params = encoder.decode(point)
        assert allowed(ALL, params), params
        assert np.all((encoder.encode(params) >= 0) & (encoder.encode(params) <= 1))


def test_snap_is_encode_of_decode() -> None:
    encoder = Encoder(ALL)
    points = np.random.default_rng(1).random((200, encoder.dims))
    snapped = encoder.snap(points)
    for point, fast in zip(points, snapped, strict=True):
        np.testing.assert_allclose(fast, encoder.encode(encoder.decode(point)), atol=1e-9)
    np.testing.assert_allclose(encoder.snap(snapped), snapped, atol=1e-12)
    assert encoder.snap(points[0]).shape == (encoder.dims,)


def test_column_info() -> None:
    encoder = Encoder(ALL)
    by_name = {g.name: g for g in encoder.groups}
    assert by_name["values_categorical"].encoding == "onehot"
    assert by_name["values_categorical"].width == 4
    assert by_name["values_bool"].encoding == "onehot"
    assert by_name["pvalues"].encoding == "onehot"
    assert by_name["values_numeric"].encoding == "ordinal"
    assert by_name["loguniform"].encoding == "log"
    assert by_name["lognormal"].encoding == "lognormal"
    assert [g.name for g in encoder.onehot_groups] == [
        "values_categorical",
        "values_bool",
        "pvalues",
    ]
    expected = np.zeros(encoder.dims, bool)
    for group in encoder.onehot_groups:
        expected[group.columns] = True
    assert np.array_equal(encoder.is_categorical_column, expected)
    quantized = by_name["quniform"].columns
    assert encoder.is_discrete_column[quantized].all()
    assert not encoder.is_discrete_column[by_name["uniform"].columns].any()


def test_uniform_and_loguniform_columns_are_linear_in_value_and_exponent() -> None:
    space = Space.from_matrix(
        {
            "u": {"uniform": {"low": -2.0, "high": 6.0}},
            "l": {"loguniform": {"low": -4.0, "high": 2.0}},
        }
    )
    encoder = Encoder(space)
    np.testing.assert_allclose(encoder.encode({"u": 0.0, "l": math.exp(-1.0)}), [0.25, 0.5])
    decoded = encoder.decode(np.array([0.75, 1.0]))
    assert decoded["u"] == pytest.approx(4.0)
    assert decoded["l"] == pytest.approx(math.exp(2.0))
    # Values outside the range (a person's trial) are clipped into the cube.
    np.testing.assert_allclose(encoder.encode({"u": 100.0, "l": 1e-9}), [1.0, 0.0])


def test_quantized_decoding_rounds_to_the_grid_and_stays_in_range() -> None:
    space = Space.from_matrix(
        {
            "q": {"quniform": {"low": 0.0, "high": 10.0, "q": 2.5}},
            "qi": {"qloguniform": {"low": 0, "high": 3, "q": 1}},
        }
    )
    encoder = Encoder(space)
    decoded = encoder.decode(np.array([0.3, 0.0]))
    assert decoded["q"] == 2.5  # 3.0 rounds to 2.5
    assert decoded["qi"] == 1 and isinstance(decoded["qi"], int)  # exp(0) = 1, int bounds and q
    top = encoder.decode(np.array([1.0, 1.0]))
    assert top["q"] == 10.0
    assert top["qi"] == 20  # round(e**3) = 20
    assert encoder.decode(np.array([1.7, -0.4]))["q"] == 10.0  # out of the cube: clipped


def test_normal_columns_go_through_the_cdf() -> None:
    space = Space.from_matrix(
        {
            "n": {"normal": {"loc": 2.0, "scale": 0.5}},
            "ln": {"lognormal": {"loc": 0.0, "scale": 1.0}},
        }
    )
    encoder = Encoder(space)
    np.testing.assert_allclose(encoder.encode({"n": 2.0, "ln": 1.0}), [0.5, 0.5])
    np.testing.assert_allclose(
        encoder.encode({"n": 2.5, "ln": math.exp(-1.0)}), [0.8413447460685429, 0.15865525393145707]
    )
    low = encoder.decode(np.zeros(2))
    # Column 0 is clipped to 1e-6 before the inverse: Phi^-1(1e-6) = -4.753424...
    assert low["n"] == pytest.approx(2.0 - 0.5 * 4.753424308822899)
    assert low["ln"] == pytest.approx(math.exp(-4.753424308822899))
    assert encoder.snap(np.zeros(2))[0] == pytest.approx(CDF_CLIP)


def test_ordinal_snaps_to_the_nearest_value() -> None:
    space = Space.from_matrix({"p": {"values": [10, 1, 2]}})
    encoder = Encoder(space)
    # Linear scale (10 / 1 < 100): positions 0, 1/9, 1 for 1, 2, 10.
    np.testing.assert_allclose(encoder.encode({"p": 2}), [1 / 9])
    assert encoder.decode(np.array([0.05]))["p"] == 1
    assert encoder.decode(np.array([0.06]))["p"] == 2
    assert encoder.decode(np.array([0.55]))["p"] == 2
    assert encoder.decode(np.array([0.56]))["p"] == 10
    np.testing.assert_allclose(encoder.snap(np.array([[0.3], [0.9]])), [[1 / 9], [1.0]])


@pytest.mark.parametrize(
    ("option", "log"),
    [
        ({"logspace": {"start": -3, "stop": 0, "num": 4}}, True),
        ({"geomspace": {"start": 1, "stop": 8, "num": 4}}, True),
        ({"values": [1, 10, 1000]}, True),  # max / min > 100
        ({"values": [1, 10, 100]}, False),  # max / min = 100
        ({"values": [0, 10, 1000]}, False),  # not all positive
        ({"geomspace": {"start": -8, "stop": -1, "num": 4}}, False),
    ],
)
def test_ordinal_log_scale_rule(option: dict[str, Any], log: bool) -> None:
    space = Space.from_matrix({"p": option})
    encoder = Encoder(space)
    values = sorted(space.params[0].values)
    positions = [float(encoder.encode({"p": v})[0]) for v in values]
    t = np.log(values) if log else np.array(values, dtype=float)
    np.testing.assert_allclose(positions, (t - t[0]) / (t[-1] - t[0]), atol=1e-12)


def test_logspace_snaps_in_log_scale() -> None:
    space = Space.from_matrix({"lr": {"logspace": {"start": -3, "stop": 0, "num": 4}}})
    encoder = Encoder(space)
    # Positions 0, 1/3, 2/3, 1 for 0.001 .. 1: 0.3 is nearest to 1/3, i.e. 0.01.
    assert encoder.decode(np.array([0.3]))["lr"] == pytest.approx(0.01)
    assert encoder.decode(np.array([0.6]))["lr"] == pytest.approx(0.1)


def test_one_hot_columns_and_argmax() -> None:
    space = Space.from_matrix({"c": {"values": ["a", True, 1, "b"]}})
    encoder = Encoder(space)
    np.testing.assert_array_equal(encoder.encode({"c": True}), [0, 1, 0, 0])
    np.testing.assert_array_equal(encoder.encode({"c": 1}), [0, 0, 1, 0])
    assert encoder.decode(np.array([0.2, 0.1, 0.3, 0.9]))["c"] == "b"
    assert encoder.decode(np.array([0.1, 0.7, 0.7, 0.0]))["c"] is True  # a tie: the first
    np.testing.assert_array_equal(encoder.snap(np.array([0.2, 0.1, 0.8, 0.3])), [0, 0, 1, 0])
    with pytest.raises(KeyError):
        encoder.encode({"c": "zzz"})


def test_pvalues_outcome_with_zero_probability_is_never_decoded() -> None:
    space = Space.from_matrix({"act": {"pvalues": [["relu", 0.0], ["tanh", 0.4]]}})
    encoder = Encoder(space)
    assert encoder.decode(np.array([1.0, 0.0]))["act"] == "tanh"


def test_list_valued_params_are_refused() -> None:
    space = Space.from_matrix(
        {
            "ok": {"uniform": {"low": 0, "high": 1}},
            "widths": {"uniform": {"low": 0, "high": 1, "size": 3}},
        }
    )
    with pytest.raises(ValueError, match="'widths'"):
        Encoder(space)


def test_decode_checks_the_shape() -> None:
    encoder = Encoder(ALL)
    with pytest.raises(ValueError):
        encoder.decode(np.zeros(encoder.dims + 1))

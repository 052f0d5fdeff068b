"""The YAML 1.2 core-schema loader: how plain scalars are typed."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from app.schemas.yaml12 import load_yaml


def scalar(text: str) -> Any:
    """Load `text` as the value of one key, the way it sits in a spec."""
    return load_yaml(f"key: {text}\n")["key"]


@pytest.mark.parametrize("text", ["1:10:2", "66:30", "0:0.5", "0:1", "-4:-1:4", "16:129:16", "1:0"])
def test_colon_forms_stay_strings(text: str) -> None:
    value = scalar(text)
    assert value == text
    assert type(value) is str


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-5", 1e-5),
        ("1E5", 100000.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1.0", 1.0),
        ("+1.5e+3", 1500.0),
        ("6.02E23", 6.02e23),
        ("-2.5e-3", -0.0025),
    ],
)
def test_floats(text: str, expected: float) -> None:
    value = scalar(text)
    assert type(value) is float
    assert value == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-3", -3),
        ("+4", 4),
        ("017", 17),  # decimal in YAML 1.2; YAML 1.1 read it as octal 15
        ("0o17", 15),
        ("0x1F", 31),
        ("0xff", 255),
    ],
)
def test_ints(text: str, expected: int) -> None:
    value = scalar(text)
    assert type(value) is int
    assert value == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    assert scalar(text) is expected


@pytest.mark.parametrize(
    "text", ["yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n", "tRue", "fALSE"]
)
def test_yaml11_booleans_stay_strings(text: str) -> None:
    assert scalar(text) == text


@pytest.mark.parametrize("text", ["null", "Null", "NULL", "~", ""])
def test_nulls(text: str) -> None:
    assert scalar(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "nUll",
        "none",
        "1_000",
        "0b101",
        "0o18",
        "0xZZ",
        "1e",
        ".",
        "+",
        "1.2.3",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "=",
        ".infinity",
        "inf",
        "nan",
        "-.nan",
    ],
)
def test_other_plain_scalars_stay_strings(text: str) -> None:
    assert scalar(text) == text


@pytest.mark.parametrize(("text", "sign"), [(".inf", 1), ("+.inf", 1), (".Inf", 1), ("-.INF", -1)])
def test_infinities(text: str, sign: int) -> None:
    value = scalar(text)
    assert math.isinf(value)
    assert math.copysign(1.0, value) == sign


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan(text: str) -> None:
    assert math.isnan(scalar(text))


@pytest.mark.parametrize(("text", "expected"), [("'1'", "1"), ('"true"', "true"), ("'~'", "~")])
def test_quoted_scalars_stay_strings(text: str, expected: str) -> None:
    assert scalar(text) == expected


def test_explicit_tags_are_honoured() -> None:
    loaded = load_yaml("a: !!float 3\nb: !!int 0x10\nc: !!str 12\nd: !!int '7'\n")
    assert loaded == {"a": 3.0, "b": 16, "c": "12", "d": 7}
    assert type(loaded["a"]) is float


def test_explicit_int_tag_on_garbage_is_an_error() -> None:
    with pytest.raises(yaml.YAMLError, match="cannot read 'abc' as an integer"):
        load_yaml("a: !!int abc\n")


def test_duplicate_keys_are_an_error_with_their_line() -> None:
    with pytest.raises(yaml.MarkedYAMLError) as info:
        load_yaml("matrix:\n  lr: {values: [1]}\n  lr: {values: [2]}\n")
    assert "duplicate key 'lr'" in str(info.value)
    assert info.value.problem_mark is not None
    assert info.value.problem_mark.line == 2


def test_merge_keys_work_and_explicit_keys_override_them() -> None:
    text = "base: &base {x: 1, y: 2}\nderived:\n  <<: *base\n  x: 3\n"
    assert load_yaml(text)["derived"] == {"x": 3, "y": 2}


def test_safe_loader_itself_is_untouched() -> None:
    # The 1.2 rules live on a subclass; PyYAML's own loader keeps YAML 1.1.
    assert yaml.safe_load("a: 1:10:2") == {"a": 4202}
    assert yaml.safe_load("a: yes") == {"a": True}
    assert load_yaml("a: yes") == {"a": "yes"}


def test_python_tags_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: !!python/object/apply:os.system ['true']\n")


def test_several_documents_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: 1\n---\nb: 2\n")


def test_a_whole_matrix_reads_as_intended() -> None:
    text = """
matrix:
  lr: {logspace: 0.01:0.1:5}
  layers: {range: 1:10:2}
  dropout: {values: [0, .5, 1e-5]}
  activation: {values: [relu, no, yes]}
  momentum: {normal: 66:30}
  use_bias: {values: [true, FALSE]}
"""
    assert load_yaml(text) == {
        "matrix": {
            "lr": {"logspace": "0.01:0.1:5"},
            "layers": {"range": "1:10:2"},
            "dropout": {"values": [0, 0.5, 1e-5]},
            "activation": {"values": ["relu", "no", "yes"]},
            "momentum": {"normal": "66:30"},
            "use_bias": {"values": [True, False]},
        }
    }


def test_empty_text_is_none() -> None:
    assert load_yaml("") is None

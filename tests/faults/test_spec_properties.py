"""Property-based tests of the spec parser: bad input gets a 422 naming a path.

Whatever bytes arrive as a group document, `parse_group_document` either
returns a `GroupRequest` whose normalised `hptuning` is plain JSON, or raises
`SpecError` listing problems that each carry a path (empty only when the
document as a whole is at fault). No other exception may escape. The same
holds over HTTP: `POST /api/v1/groups` answers 201 or a 4xx problem, never 5xx.

Documents come from four sources: arbitrary JSON-like trees (keyed with the
spec's real names as well as noise), valid specs, valid specs with a few
mutations, and YAML-flavoured text or raw bytes. Generation is derandomized
and bounded, so a run is reproducible and quick.
"""

from __future__ import annotations

import copy
import json
import math
import types
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from app.schemas.documents import (
    GroupRequest,
    SpecError,
    UnsupportedMediaTypeError,
    load_document,
    parse_group_document,
)
from app.schemas.spec import DISCRETE_OPTIONS, MATRIX_OPTIONS, HPTuning
from tests.conftest import LiveServer

# Error types that are about the body as a whole: the only ones allowed an empty path.
DOCUMENT_ERROR_TYPES = frozenset(
    {
        "invalid_json",
        "invalid_yaml",
        "invalid_encoding",
        "invalid_document",
        "unsupported_media_type",
    }
)

PARSER_SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HTTP_SETTINGS = settings(PARSER_SETTINGS, max_examples=50)
CHEAP_SETTINGS = settings(PARSER_SETTINGS, max_examples=200)  # text is quick to make and read


# --------------------------------------------------------------------------- vocabulary


def _model_field_names(root: type[BaseModel]) -> set[str]:
    """Every field name of `root` and of the models reachable through its annotations."""
    names: set[str] = set()
    seen: set[type] = set()
    pending: list[Any] = [root]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                continue
            seen.add(annotation)
            for name, field in annotation.model_fields.items():
                names.add(name)
                pending.append(field.annotation)
        else:
            pending.extend(typing.get_args(annotation))
            if isinstance(annotation, types.UnionType):
                pending.extend(annotation.__args__)
    return names


SPEC_KEYS = sorted(
    _model_field_names(GroupRequest)
    | set(MATRIX_OPTIONS)
    | {"start", "stop", "step", "num", "base", "low", "high", "q", "size", "loc", "scale"}
    | {"version", "kind", "params", "declarations", "build", "run", "environment"}
    | {"lr", "dropout", "batch_size", "epochs"}
)
SPEC_WORDS = [
    *("maximize", "minimize", "MAXIMIZE", "Minimize", "median", "average", "truncation"),
    *("diff", "ucb", "ei", "poi", "matern", "rbf", "int", "float", "group", "experiment"),
    *("succeeded", "failed", "constant_liar", "kriging_believer"),
    *("0:1", "1:10:2", "-4:-1:4", "0:1:5:2", "1e-5:1e-1", "0.1:1:0.1", ":", "a:b", "1:0"),
    *("0:1e400", "nan:1", "0:1000000000:1", " 1 : 2 ", "1:2:3:4:5"),
]
# Lone surrogates: legal in a Python str and in JSON escapes, not in UTF-8.
ODD_STRINGS = ["\ud800", "a\udfff", "", " ", "\x00", "\u2028", "é", "1", "true", "null", "~"]
EDGE_INTS = [0, 1, -1, 2, 2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, 1e-308, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan]

keys = st.sampled_from(SPEC_KEYS) | st.sampled_from(ODD_STRINGS) | st.text(max_size=8)
numbers = (
    st.integers()
    | st.sampled_from(EDGE_INTS)
    | st.sampled_from(EDGE_INTS).map(lambda n: -n)
    | st.floats()
    | st.sampled_from(EDGE_FLOATS)
)
scalars = (
    st.none()
    | st.booleans()
    | numbers
    | st.text(max_size=12)
    | st.sampled_from(SPEC_WORDS)
    | st.sampled_from(SPEC_KEYS)
    | st.sampled_from(ODD_STRINGS)
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


# --------------------------------------------------------------------------- valid specs

PARAM_NAMES = ["lr", "dropout", "batch_size", "layers", "optimizer", "momentum"]
LAYOUTS = {
    "range": ("start", "stop", "step"),
    "linspace": ("start", "stop", "num"),
    "logspace": ("start", "stop", "num"),
    "geomspace": ("start", "stop", "num"),
    "uniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "loguniform": ("low", "high"),
    "qloguniform": ("low", "high", "q"),
    "normal": ("loc", "scale"),
    "qnormal": ("loc", "scale", "q"),
    "lognormal": ("loc", "scale"),
    "qlognormal": ("loc", "scale", "q"),
}
small_ints = st.integers(-1000, 1000)
positive_ints = st.integers(1, 1000)
small_floats = st.floats(-1000, 1000, allow_nan=False).map(lambda x: round(x, 6))
positive = st.integers(1, 100) | st.floats(0.001, 100).map(lambda x: round(x, 6)).filter(bool)


@st.composite
def option_bounds(draw: st.DrawFn, kind: str) -> dict[str, int | float]:
    """Named bounds that satisfy `kind`'s checks (order, positivity, size)."""
    if kind in ("range", "linspace", "logspace", "geomspace"):
        if kind == "geomspace":
            start: int | float = draw(positive)
        else:
            start = draw(small_ints | small_floats)
        stop = start + draw(st.integers(1, 50))
        if kind == "range":
            return {"start": start, "stop": stop, "step": draw(st.sampled_from([1, 2, 0.5, 10]))}
        return {"start": start, "stop": stop, "num": draw(st.integers(1, 20))}
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        low = draw(small_ints | small_floats)
        bounds: dict[str, int | float] = {"low": low, "high": low + draw(positive)}
    else:
        bounds = {"loc": draw(small_ints | small_floats), "scale": draw(positive)}
    if kind.startswith("q"):
        bounds["q"] = draw(positive)
    return bounds


@st.composite
def matrix_options(draw: st.DrawFn, kinds: tuple[str, ...]) -> dict[str, Any]:
    """One valid option, in its dict, list or 'a:b:c' string form."""
    kind = draw(st.sampled_from(kinds))
    if kind == "values":
        value = st.booleans() | small_ints | small_floats | st.text(min_size=1, max_size=8)
        return {kind: draw(st.lists(value, min_size=1, max_size=5))}
    if kind == "pvalues":
        # Probabilities are floats below 1 that add up to at most 1.
        weights = draw(st.sampled_from([[0.5, 0.5], [0.25] * 4, [0.1, 0.2, 0.7], [0.3, 0.3]]))
        return {kind: [[draw(small_ints | st.text(max_size=5)), p] for p in weights]}
    bounds = draw(option_bounds(kind))
    names = LAYOUTS[kind]
    form = draw(st.sampled_from(["dict", "list", "string"]))
    if form == "dict":
        return {kind: bounds}
    items = [bounds[name] for name in names]
    if form == "list":
        return {kind: items}
    return {kind: ":".join(repr(item) if isinstance(item, float) else str(item) for item in items)}


metric = st.fixed_dictionaries(
    {"name": st.sampled_from(["loss", "accuracy", "val_loss"])},
    optional={"optimization": st.sampled_from(["maximize", "minimize", "MINIMIZE", "Maximize"])},
)
policy = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["median", "average"]), "evaluation_interval": st.integers(1, 5)},
        optional={"min_interval": st.integers(1, 5), "min_samples": st.integers(1, 5)},
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["truncation", "diff", "Truncation", "DIFF"]),
            "percent": st.floats(1, 99).map(lambda x: round(x, 3)),
            "evaluation_interval": st.integers(1, 5),
        }
    ),
)
early_stopping = st.lists(
    st.fixed_dictionaries(
        {"metric": st.sampled_from(["loss", "accuracy"]), "value": small_floats},
        optional={"optimization": st.sampled_from(["maximize", "minimize"]), "policy": policy},
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def hptuning_sections(draw: st.DrawFn) -> dict[str, Any]:
    algorithm = draw(st.sampled_from(["grid", "implicit_grid", "random", "hyperband", "bo", "tpe"]))
    kinds = DISCRETE_OPTIONS if algorithm in ("grid", "implicit_grid") else MATRIX_OPTIONS
    if algorithm in ("grid", "implicit_grid"):
        kinds = tuple(kind for kind in kinds if kind != "pvalues")
    names = draw(st.lists(st.sampled_from(PARAM_NAMES), min_size=1, max_size=3, unique=True))
    section: dict[str, Any] = {"matrix": {name: draw(matrix_options(kinds)) for name in names}}
    if algorithm == "grid":
        section["grid_search"] = draw(st.just({}) | st.builds(dict, n_experiments=positive_ints))
    elif algorithm == "random":
        section["random_search"] = {"n_experiments": draw(positive_ints)}
    elif algorithm == "hyperband":
        section["hyperband"] = {
            "max_iter": draw(st.integers(1, 81)),
            "eta": draw(st.sampled_from([2, 3, 3.5, 4])),
            "resource": {"name": "epochs", "type": draw(st.sampled_from(["int", "float"]))},
            "metric": draw(metric),
            "resume": draw(st.booleans()),
        }
    elif algorithm == "bo":
        section["bo"] = {
            "n_initial_trials": draw(st.integers(1, 10)),
            "n_iterations": draw(st.integers(0, 10)),
            "metric": draw(metric),
            "utility_function": draw(
                st.sampled_from(
                    [
                        {"acquisition_function": "ucb", "kappa": 2.5},
                        {"acquisition_function": "ei", "eps": 0.1},
                        {"acquisition_function": "POI", "eps": 0.5, "n_warmup": 100},
                    ]
                )
            ),
        }
    elif algorithm == "tpe":
        section["tpe"] = {"n_experiments": draw(st.integers(1, 50)), "metric": draw(metric)}
    if draw(st.booleans()):
        section["concurrency"] = draw(st.integers(1, 8))
    if draw(st.booleans()):
        section["seed"] = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        section["early_stopping"] = draw(early_stopping)
    if draw(st.booleans()):
        section["failure_early_stopping"] = {"percent": draw(st.integers(1, 100))}
    order = draw(st.permutations(list(section)))
    return {key: section[key] for key in order}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid group document in one of the three accepted shapes."""
    hptuning = draw(hptuning_sections())
    extras = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.text(min_size=1, max_size=20),
                "description": st.text(max_size=40),
                "objective": metric,
                "lease_seconds": st.integers(1, 7 * 24 * 3600),
            },
        )
    )
    shape = draw(st.sampled_from(["wrapper", "bare", "polyaxonfile"]))
    if shape == "wrapper":
        return {**extras, "hptuning": hptuning}
    if shape == "bare":
        return {**hptuning, **extras}
    params = {"batch_size_fixed": 128} if draw(st.booleans()) else {}
    return {
        "version": 1,
        "kind": draw(st.sampled_from(["group", "Group", "GROUP"])),
        **({"params": params} if params else {}),
        "build": {"image": "python:3.11"},
        "run": {"cmd": "python train.py"},
        **extras,
        "hptuning": hptuning,
    }


# --------------------------------------------------------------------------- mutations


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def _retyped(value: Any) -> Any:
    """The same content under another JSON type."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid document with one to three local edits: near misses of the spec."""
    document: Any = copy.deepcopy(draw(valid_documents()))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(document))))
        if not path:
            document = draw(st.sampled_from([[document], json.dumps(document), None]))
            continue
        parent, last = _parent(document, path), path[-1]
        edit = draw(st.sampled_from(["delete", "replace", "retype", "swap", "rename", "null"]))
        if edit == "delete":
            del parent[last]
        elif edit == "replace":
            parent[last] = draw(json_like)
        elif edit == "retype":
            parent[last] = _retyped(parent[last])
        elif edit == "null":
            parent[last] = None
        elif edit == "swap":
            other = draw(st.sampled_from(list(_paths(document))))
            nested = other[: len(path)] == path or path[: len(other)] == other
            if other and not nested:
                other_parent = _parent(document, other)
                parent[last], other_parent[other[-1]] = other_parent[other[-1]], parent[last]
        elif isinstance(parent, dict):  # rename
            new_key = draw(keys | st.just(f"{last}s") | st.just(str(last).upper()))
            parent[new_key] = parent.pop(last)
    return document


# --------------------------------------------------------------------------- bodies

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "application/problem+json"]
YAML_TYPES = ["application/yaml", "application/x-yaml", "text/yaml", "text/plain", None, ""]
ODD_TYPES = ["application/xml", "multipart/form-data", "Application/YAML ; q=1", "; charset=x"]
YAML_TOKENS = [
    *("hptuning:", "matrix:", "lr:", "values:", "uniform:", "kind: group", "version: 1"),
    *("\n", "\n  ", "\n    ", "- ", ": ", ", ", "{", "}", "[", "]", "? ", "&a ", "*a", "<<: "),
    *("!!binary ", "!!timestamp ", "!!bool ", "!!int ", "!!float ", "!!str ", "!!set ", "!!omap "),
    *("!!null ", "!!python/tuple ", "!foo ", "|\n  ", ">\n  ", "'", '"', "# c", "---", "..."),
    *("%YAML 1.2\n---\n", "0x1F", "0o17", "1e400", ".nan", "-.inf", "~", "yes", "1:10:2"),
    *("0b11", "1_000", "2001-12-14", "9" * 40, "\t", "\ufeff", "\x85", "\\ud800", "maybe"),
]
yaml_text = st.lists(
    st.sampled_from(YAML_TOKENS) | st.text(max_size=3), min_size=1, max_size=25
).map("".join)


def _yaml_dump(document: Any, flow: bool | None) -> str:
    return yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False)


@st.composite
def bodies(draw: st.DrawFn, *, media_types: list[str | None] | None = None) -> tuple[bytes, Any]:
    """A request body and the Content-Type it is sent with."""
    document = draw(
        st.one_of(valid_documents(), mutated_documents(), mutated_documents(), json_like)
    )
    encoding = draw(st.sampled_from(["json", "yaml", "yaml", "text", "bytes"]))
    if encoding == "json":
        text = json.dumps(document, ensure_ascii=draw(st.booleans()))
        default_types: list[str | None] = JSON_TYPES
    elif encoding == "yaml":
        text = _yaml_dump(document, draw(st.sampled_from([None, True, False])))
        default_types = YAML_TYPES
    elif encoding == "text":
        text = draw(yaml_text | st.text(max_size=60))
        default_types = YAML_TYPES + JSON_TYPES
    else:
        body = draw(st.binary(max_size=80))
        return body, draw(st.sampled_from(media_types or YAML_TYPES + JSON_TYPES + ODD_TYPES))
    content_type = draw(st.sampled_from(media_types or default_types + ODD_TYPES))
    # surrogatepass: a lone surrogate in a str becomes bytes that are not UTF-8.
    return text.encode("utf-8", errors="surrogatepass"), content_type


# --------------------------------------------------------------------------- the property


def _top_level_names(body: bytes, content_type: str | None) -> set[str] | None:
    """The names an error path may start with, or None when the body does not load."""
    try:
        document = load_document(body, content_type)
    except SpecError:
        return None
    names = {"hptuning"}
    if isinstance(document, dict):
        names.update(str(key) for key in document)
    return names


def check_errors_name_paths(exc: SpecError, body: bytes, content_type: str | None) -> None:
    assert isinstance(exc.errors, list) and exc.errors, f"SpecError without errors: {exc!r}"
    names = _top_level_names(body, content_type)
    for error in exc.errors:
        assert isinstance(error, dict), error
        assert isinstance(error.get("path"), str), error
        assert isinstance(error.get("message"), str) and error["message"], error
        assert isinstance(error.get("type"), str) and error["type"], error
        path = error["path"]
        if not path:
            assert error["type"] in DOCUMENT_ERROR_TYPES, (
                f"an error about a part of the document has an empty path: {error}"
            )
        elif names is not None:
            assert any(path == name or path.startswith(f"{name}.") for name in names), (
                f"path {path!r} names nothing at the top level of the document "
                f"(top-level keys: {sorted(names)}): {error}"
            )


def _name_the_input(exc: BaseException, body: bytes, content_type: str | None) -> None:
    # The schemathesis plugin mutes Hypothesis' printing of the falsifying example
    # for the whole session, so each failure carries its input itself.
    exc.add_note(f"Content-Type: {content_type!r}\nbody ({len(body)} bytes): {body[:600]!r}")


def check_document(body: bytes, content_type: str | None) -> GroupRequest | SpecError:
    """Parse a body; assert the outcome is a usable request or a SpecError naming paths."""
    try:
        try:
            request = parse_group_document(body, content_type)
        except SpecError as exc:
            check_errors_name_paths(exc, body, content_type)
            return exc
        assert isinstance(request, GroupRequest)
        normalized = request.hptuning.normalized()
        text = json.dumps(normalized, allow_nan=False)
        # What is stored is read back by the algorithms: it must validate to itself.
        assert HPTuning.model_validate(json.loads(text)).normalized() == normalized
        return request
    except Exception as exc:
        _name_the_input(exc, body, content_type)
        raise


@PARSER_SETTINGS
@given(bodies())
def test_any_body_parses_or_names_its_faults(body_and_type: tuple[bytes, Any]) -> None:
    check_document(*body_and_type)


def _as_json_or_yaml(document: Any, encoding: str) -> tuple[bytes, str | None]:
    if encoding == "json":
        return json.dumps(document).encode("utf-8", "surrogatepass"), "application/json"
    return _yaml_dump(document, None).encode("utf-8", "surrogatepass"), None


@PARSER_SETTINGS
@given(json_like, st.sampled_from(["json", "yaml"]))
def test_any_json_like_tree_parses_or_names_its_faults(document: Any, encoding: str) -> None:
    check_document(*_as_json_or_yaml(document, encoding))


@PARSER_SETTINGS
@given(mutated_documents(), st.sampled_from(["json", "yaml"]))
def test_near_valid_documents_parse_or_name_their_faults(document: Any, encoding: str) -> None:
    check_document(*_as_json_or_yaml(document, encoding))


@CHEAP_SETTINGS
@given(yaml_text | st.binary(max_size=120), st.sampled_from(YAML_TYPES))
def test_any_text_as_yaml_parses_or_names_its_faults(text: str | bytes, content_type: Any) -> None:
    body = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    check_document(body, content_type)


@settings(PARSER_SETTINGS, max_examples=50)
@given(valid_documents(), st.sampled_from(["json", "yaml"]))
def test_valid_documents_are_accepted(document: dict[str, Any], encoding: str) -> None:
    if encoding == "json":
        body, content_type = json.dumps(document).encode(), "application/json"
    else:
        body, content_type = _yaml_dump(document, None).encode(), "application/yaml"
    outcome = check_document(body, content_type)
    assert isinstance(outcome, GroupRequest), f"a valid document was refused: {outcome.errors}"


# --------------------------------------------------------------------------- found by hand

GIANT = "9" * 5000  # more digits than Python converts between int and str by default
HUGE = "9" * 400  # more than a float can hold
YAML, JSON = "application/yaml", "application/json"
ONE_VALUE = "hptuning: {matrix: {a: {values: [1]}}}"
UNIFORM = "matrix: {a: {uniform: '0:1'}}"
HUGE_VALUES = f"matrix: {{a: {{values: [1, {HUGE}]}}}}"


def _hptuning(section: str) -> str:
    return f"hptuning: {{{section}}}"


# Bodies that broke the property when these tests were written, kept as fixed cases.
HAZARDS: dict[str, tuple[str | None, str]] = {
    "yaml-giant-decimal-int": (YAML, _hptuning(f"matrix: {{a: {{values: [{GIANT}]}}}}")),
    "yaml-giant-hex-int": (YAML, _hptuning(f"matrix: {{a: {{values: [0x{GIANT}]}}}}")),
    "yaml-giant-explicit-int": (YAML, f"name: !!int {GIANT}\n{ONE_VALUE}"),
    "yaml-bool-tag-not-a-bool": (YAML, f"name: !!bool maybe\n{ONE_VALUE}"),
    "yaml-timestamp-tag-not-a-date": (YAML, f"name: !!timestamp x\n{ONE_VALUE}"),
    "yaml-self-referencing-list": (YAML, _hptuning("matrix: {a: {values: &v [1, *v]}}")),
    "yaml-boolean-top-level-key": (YAML, f"true: 1\n{ONE_VALUE}"),
    "json-giant-int": (JSON, f'{{"name": {GIANT}, "hptuning": {{}}}}'),
    "json-lone-surrogate-top-level-key": (JSON, '{"\\udfff": 1, "hptuning": {}}'),
    "json-lone-surrogate-matrix-key": (JSON, '{"hptuning": {"matrix": {"\\ud800": {}}}}'),
    "json-nested-too-deeply": (JSON, "[" * 100_000 + "]" * 100_000),
    "yaml-nested-too-deeply": (YAML, "[" * 600 + "]" * 600),
    "utf8-bom-only": (None, "\ufeff"),
    "nul-byte": (None, "\x00"),
}
# Accepted by the parser; they stress what the service does with the numbers.
SERVICE_HAZARDS: dict[str, tuple[str | None, str]] = {
    "concurrency-above-int32": (
        YAML,
        _hptuning("concurrency: 2147483648, matrix: {a: {values: [1]}}"),
    ),
    "random-n-experiments-above-int32": (
        YAML,
        _hptuning(f"random_search: {{n_experiments: 2147483648}}, {UNIFORM}"),
    ),
    "grid-of-10-to-the-12-cells": (
        YAML,
        _hptuning("matrix: {a: {range: '0:1000000:1'}, b: {range: '0:1000000:1'}}"),
    ),
    "tpe-n-experiments-above-int32": (
        YAML,
        _hptuning(f"tpe: {{n_experiments: 2147483648, metric: {{name: l}}}}, {UNIFORM}"),
    ),
    "bo-n-initial-trials-above-int32": (
        YAML,
        _hptuning(
            "bo: {n_initial_trials: 2147483648, n_iterations: 1, metric: {name: l}}, " + UNIFORM
        ),
    ),
    "hyperband-max-iter-2-to-the-62": (
        YAML,
        _hptuning(
            f"hyperband: {{max_iter: {2**62}, eta: 3, resource: {{name: e}}, "
            f"metric: {{name: l}}}}, {UNIFORM}"
        ),
    ),
    "mapping-concurrency-above-int32": (
        YAML,
        _hptuning("mapping: {values: [{a: 1}]}, concurrency: 99999999999"),
    ),
    "values-with-a-400-digit-int": (YAML, _hptuning(HUGE_VALUES)),
    "bo-values-with-a-400-digit-int": (
        YAML,
        _hptuning(
            f"bo: {{n_initial_trials: 1, n_iterations: 1, metric: {{name: l}}}}, {HUGE_VALUES}"
        ),
    ),
    "tpe-values-with-a-400-digit-int": (
        YAML,
        _hptuning(f"tpe: {{n_experiments: 3, metric: {{name: l}}}}, {HUGE_VALUES}"),
    ),
}


def _encoded(*tables: dict[str, tuple[str | None, str]]) -> list[Any]:
    return [
        pytest.param(content_type, body.encode("utf-8"), id=name)
        for table in tables
        for name, (content_type, body) in table.items()
    ]


@pytest.mark.parametrize(("content_type", "body"), _encoded(HAZARDS, SERVICE_HAZARDS))
def test_hazards_parse_or_name_their_faults(content_type: str | None, body: bytes) -> None:
    check_document(body, content_type)


# --------------------------------------------------------------------------- over HTTP


def check_over_http(client: httpx.Client, body: bytes, content_type: str | None) -> None:
    """POST a body: 201 with a group, or a 4xx problem whose errors name paths; never 5xx.

    A group that was created is asked for a first trial too, which runs the
    algorithm on the stored spec: that must not fail either.
    """
    headers = {"Content-Type": content_type} if content_type is not None else {}
    try:
        response = client.post("/api/v1/groups", content=body, headers=headers)
    except httpx.HTTPError as exc:
        _name_the_input(exc, body, content_type)
        raise
    where = f"POST /api/v1/groups ({content_type!r}, {body[:200]!r}) -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:1000]}"
    if response.status_code == 201:
        assert response.headers["content-type"].startswith("application/json"), where
        group_id = response.json()["id"]
        assert isinstance(group_id, int), where
        suggestion = client.post(f"/api/v1/groups/{group_id}/suggestions", json={"count": 1})
        assert suggestion.status_code < 500, (
            f"{where}, then POST /api/v1/groups/{group_id}/suggestions -> "
            f"{suggestion.status_code}: {suggestion.text[:1000]}"
        )
        return
    assert 400 <= response.status_code < 500, f"{where}: {response.text[:1000]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    problem = response.json()
    assert problem["status"] == response.status_code, where
    try:
        parse_group_document(body, content_type)
    except UnsupportedMediaTypeError:
        assert response.status_code == 415, f"{where}: {problem}"
        return
    except SpecError as exc:
        # The server parses with the same code: the answer lists the same faults.
        assert response.status_code == 422, f"{where}: {problem}"
        assert [e["path"] for e in problem["errors"]] == [e["path"] for e in exc.errors], where
        return
    # Parsed, but the service refused it (e.g. an algorithm that needs more).
    assert response.status_code == 422, f"{where}: {problem}"
    assert problem.get("errors"), f"{where}: a 422 without errors: {problem}"
    for error in problem["errors"]:
        assert isinstance(error.get("path"), str), f"{where}: {error}"


@pytest.fixture(scope="module")
def http(pg_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_server.url, timeout=60) as client:
        yield client


@HTTP_SETTINGS
@given(body_and_type=bodies(media_types=JSON_TYPES + YAML_TYPES + ODD_TYPES))
def test_any_body_over_http_is_a_group_or_a_4xx_problem(
    http: httpx.Client, body_and_type: tuple[bytes, Any]
) -> None:
    check_over_http(http, *body_and_type)


@pytest.mark.parametrize(("content_type", "body"), _encoded(HAZARDS, SERVICE_HAZARDS))
def test_hazards_over_http_are_a_group_or_a_4xx_problem(
    http: httpx.Client, content_type: str | None, body: bytes
) -> None:
    check_over_http(http, body, content_type)

"""A YAML loader that reads plain scalars by the YAML 1.2 core schema.

PyYAML implements YAML 1.1, whose implicit typing surprises users of a search
spec: `1:10:2` becomes the base-60 integer 4202, `1e-5` stays a string, and
`yes`/`no`/`on`/`off` turn into booleans. hpo-engine documents that it reads
YAML 1.2 instead, so this loader keeps PyYAML's parser and replaces only the
rules that decide what type an untagged plain scalar has.

Two more departures from plain `yaml.safe_load`:
- duplicate keys in one mapping are an error (YAML 1.2 requires unique keys,
  and silently keeping the last one hides typos in a matrix);
- timestamps are not recognised (the core schema has none), so dates stay strings.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

__all__ = ["Yaml12Loader", "load_yaml"]

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_DEC_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_OCT_INT_RE = re.compile(r"^0o[0-7]+$")
_HEX_INT_RE = re.compile(r"^0x[0-9a-fA-F]+$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_DEC_FLOAT_RE = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF_RE = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN_RE = re.compile(r"^\.(?:nan|NaN|NAN)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))$"
)
_DIGITS = list("0123456789")


class Yaml12Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.2 core-schema implicit typing."""

    # A fresh dict on this class, so that SafeLoader's YAML 1.1 resolvers are not
    # inherited and add_implicit_resolver below does not touch SafeLoader itself.
    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            self._reject_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _reject_duplicate_keys(self, node: MappingNode) -> None:
        # Only the keys written in this mapping are compared: keys pulled in by a
        # `<<` merge may legitimately be overridden by an explicit key.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)


def _construct_int(loader: Yaml12Loader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if _OCT_INT_RE.match(text):
        return int(text[2:], 8)
    if _HEX_INT_RE.match(text):
        return int(text[2:], 16)
    if _DEC_INT_RE.match(text):
        # Leading zeros are decimal in YAML 1.2 (`017` is 17, not octal 15).
        return int(text, 10)
    raise ConstructorError(None, None, f"cannot read {text!r} as an integer", node.start_mark)


def _construct_float(loader: Yaml12Loader, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node))
    if _INF_RE.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN_RE.match(text):
        return math.nan
    if _DEC_FLOAT_RE.match(text):
        return float(text)
    raise ConstructorError(None, None, f"cannot read {text!r} as a float", node.start_mark)


Yaml12Loader.add_implicit_resolver(_NULL_TAG, _NULL_RE, ["~", "n", "N", ""])
Yaml12Loader.add_implicit_resolver(_BOOL_TAG, _BOOL_RE, list("tTfF"))
# Integers are tried before floats: every integer also matches the float pattern.
Yaml12Loader.add_implicit_resolver(_INT_TAG, _INT_RE, [*_DIGITS, "-", "+"])
Yaml12Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, [*_DIGITS, "-", "+", "."])
# `<<` merge keys are not part of YAML 1.2, but anchors plus merges are common in
# hand-written files and nothing else reads `<<` differently, so they keep working.
Yaml12Loader.add_implicit_resolver(_MERGE_TAG, re.compile(r"^(?:<<)$"), ["<"])

Yaml12Loader.add_constructor(_INT_TAG, _construct_int)
Yaml12Loader.add_constructor(_FLOAT_TAG, _construct_float)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with YAML 1.2 core-schema scalars.

    Raises `yaml.YAMLError` (with a `problem_mark` where PyYAML has one) when
    the text is not valid YAML or holds more than one document.
    """
    # yaml.load is safe here: Yaml12Loader builds on SafeLoader.
    return yaml.load(text, Loader=Yaml12Loader)

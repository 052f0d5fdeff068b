"""Turning a request body (JSON or YAML) into a validated group request.

Three document shapes are accepted:
- our wrapper: `{name?, description?, objective?, lease_seconds?, hptuning: {...}}`;
- a bare `hptuning` section (a top level with `matrix` and the like);
- a whole Polyaxon 0.x file (`version` and/or `kind` at the top level), of
  which only `hptuning` and our own wrapper keys are read.

Every problem is reported as a `SpecError` whose entries carry the dotted path
of the faulty field, always relative to the wrapper (`hptuning.matrix.lr`), so
a client gets the same paths whatever shape it sent.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from app.schemas.spec import HPTuning, Optimization
from app.schemas.yaml12 import load_yaml

__all__ = [
    "JSON_MEDIA_TYPES",
    "MAX_LEASE_SECONDS",
    "YAML_MEDIA_TYPES",
    "GroupRequest",
    "Objective",
    "SpecError",
    "UnsupportedMediaTypeError",
    "load_document",
    "parse_group_document",
    "validate_group_document",
]

JSON_MEDIA_TYPES = frozenset({"application/json"})
YAML_MEDIA_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
MAX_LEASE_SECONDS = 7 * 24 * 3600

_MATRIX_REQUIRED_MESSAGE = "A matrix definition is required for group specification."
_WRAPPER_KEYS = ("name", "description", "objective", "lease_seconds", "trials")
_POLYAXONFILE_MARKERS = ("version", "kind")
# Polyaxon 0.5 renamed `declarations` to `params`; files of either age come in.
_STATIC_PARAM_SECTIONS = ("params", "declarations")
_GROUP_KIND_SPELLINGS = ("group", "GROUP", "Group")


class SpecError(Exception):
    """A document that cannot become a group; `errors` lists every problem found.

    Each entry is `{"path": "hptuning.matrix.lr.uniform", "message": ..., "type": ...}`;
    the path is "" when the body as a whole is at fault.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {"path": "", "message": "invalid document"}
        where = f"{first['path']}: " if first["path"] else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}{first['message']}{more}")


class UnsupportedMediaTypeError(SpecError):
    """The Content-Type is neither JSON nor YAML; the API may answer 415 for it."""


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    optimization: Optimization = "maximize"


def _mark_hptuning_required(schema: dict[str, Any]) -> None:
    # `hptuning` has a None default only so that its absence gets our own message.
    schema.get("properties", {}).get("hptuning", {}).pop("default", None)
    required = schema.setdefault("required", [])
    if "hptuning" not in required:
        required.append("hptuning")


class ImportedTrial(BaseModel):
    """A past result to start from: a configuration and the metric values it reached."""

    model_config = ConfigDict(extra="forbid", strict=True)

    params: Annotated[dict[str, Any], Field(min_length=1)]
    values: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        Annotated[float, Field(allow_inf_nan=False)],
    ] = Field(default_factory=dict, max_length=100)
    status: Literal["succeeded", "failed"] = "succeeded"


class GroupRequest(BaseModel):
    """What a client sends to create a group."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_mark_hptuning_required
    )

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=5000)] | None = None
    objective: Objective | None = None
    lease_seconds: Annotated[int, Field(ge=1, le=MAX_LEASE_SECONDS)] | None = None
    hptuning: HPTuning = Field(default=None, validate_default=True)
    trials: Annotated[list[ImportedTrial], Field(max_length=10_000)] | None = Field(
        default=None,
        description=(
            "Past results (another tool's, an earlier group's) that the algorithm takes into "
            "account: grid and random search skip them, bo and tpe learn from them."
        ),
    )

    @field_validator("hptuning", mode="before")
    @classmethod
    def _hptuning_present(cls, hptuning: Any) -> Any:
        if hptuning is None:
            raise PydanticCustomError("missing", _MATRIX_REQUIRED_MESSAGE)
        return hptuning


# --------------------------------------------------------------------------- parsing


def _document_error(error_type: str, message: str, path: str = "") -> SpecError:
    return SpecError([{"path": path, "message": message, "type": error_type}])


def _media_type(content_type: str | None) -> str:
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys; in a matrix that hides a typo.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not a valid JSON value")


def _load_json(text: str) -> Any:
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
        # A `\ud800` escape decodes to a lone surrogate: no text, and nothing to store.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
        return document
    except UnicodeEncodeError:
        raise _document_error(
            "invalid_encoding", "The JSON holds an unpaired surrogate escape (like \\ud800)."
        ) from None
    except json.JSONDecodeError as exc:
        raise _document_error(
            "invalid_json", f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise _document_error("invalid_json", f"Invalid JSON: {exc}") from None
    except RecursionError:
        raise _document_error("invalid_json", "Invalid JSON: nested too deeply") from None


def _load_yaml(text: str) -> Any:
    try:
        return load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable document"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _document_error("invalid_yaml", f"Invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise _document_error("invalid_yaml", f"Invalid YAML: {exc}") from None
    except RecursionError:
        raise _document_error("invalid_yaml", "Invalid YAML: nested too deeply") from None
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
        # PyYAML's own constructors raise these on tagged scalars they cannot read
        # (`!!bool maybe`, an empty `!!timestamp`, an int past Python's digit limit).
        raise _document_error("invalid_yaml", f"Invalid YAML: unreadable value ({exc})") from None


def load_document(body: bytes, content_type: str | None) -> Any:
    """Decode and parse a body by its media type; no validation of the content.

    JSON for `application/json` and any `+json` type; YAML (1.2 rules) for the
    YAML media types, `text/plain`, or no Content-Type at all.
    """
    media_type = _media_type(content_type)
    is_json = media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")
    if not is_json and media_type and media_type not in YAML_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            [
                {
                    "path": "",
                    "message": f"Unsupported media type {media_type!r}; "
                    "send application/json or application/yaml.",
                    "type": "unsupported_media_type",
                }
            ]
        )
    try:
        # utf-8-sig: a leading byte-order mark, which some editors write, is dropped.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _document_error(
            "invalid_encoding",
            f"The body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}).",
        ) from None
    document = _load_json(text) if is_json else _load_yaml(text)
    try:
        # A `\ud800` escape decodes to a lone surrogate: no text, and nothing to store.
        json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        raise _document_error(
            "invalid_encoding", "The document holds an unpaired surrogate escape (like \\ud800)."
        ) from None
    except (ValueError, RecursionError):
        pass  # not JSON-able for other reasons (a huge int): validation says where
    return document


# --------------------------------------------------------------------------- shapes


def _clean_message(error: dict[str, Any]) -> str:
    error_type = error["type"]
    message = str(error["msg"])
    if error_type == "missing" and message == "Field required":
        return "This field is required."
    if error_type == "extra_forbidden" and error["loc"]:
        return f"Unknown key `{error['loc'][-1]}`."
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _describe_type(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _spec_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "path": ".".join(str(part) for part in error["loc"]),
            "message": _clean_message(error),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False)
    ]


def _polyaxonfile_errors(document: dict[Any, Any]) -> list[dict[str, str]]:
    """Checks on the parts of a polyaxonfile that are not ours to validate."""
    errors: list[dict[str, str]] = []
    if "kind" in document and document["kind"] not in _GROUP_KIND_SPELLINGS:
        errors.append(
            {
                "path": "kind",
                "message": "Only a polyaxonfile of `kind: group` can create a group, "
                f"received {document['kind']!r}.",
                "type": "kind",
            }
        )
    hptuning = document.get("hptuning")
    matrix = hptuning.get("matrix") if isinstance(hptuning, dict) else None
    if isinstance(matrix, dict):
        # Polyaxon lets a static param silently override the matrix value, so the
        # "search" would run over a constant (issues #768, #705); we refuse it.
        for section in _STATIC_PARAM_SECTIONS:
            params = document.get(section)
            if not isinstance(params, dict):
                continue
            for key in params:
                if key in matrix:
                    errors.append(
                        {
                            "path": f"{section}.{key}",
                            "message": f"`{key}` is set both in {section} and in the matrix.",
                            "type": "params_conflict",
                        }
                    )
    return errors


def _request_data(document: dict[Any, Any]) -> tuple[dict[Any, Any], list[dict[str, str]]]:
    """The wrapper-shaped data for a document of any accepted shape, plus shape errors."""
    if any(marker in document for marker in _POLYAXONFILE_MARKERS):
        # A polyaxonfile: build, run, environment and the rest are the training
        # side's business; only hptuning and our own keys matter here.
        data = {key: document[key] for key in _WRAPPER_KEYS if key in document}
        data["hptuning"] = document.get("hptuning")
        return data, _polyaxonfile_errors(document)
    if "hptuning" not in document and any(key in HPTuning.model_fields for key in document):
        # A bare hptuning section; our wrapper keys may sit beside it, as no name
        # is shared between the two.
        data = {key: document[key] for key in _WRAPPER_KEYS if key in document}
        data["hptuning"] = {
            key: value for key, value in document.items() if key not in _WRAPPER_KEYS
        }
        return data, []
    return document, []


def validate_group_document(document: Any) -> GroupRequest:
    """Validate an already parsed document of any accepted shape."""
    if document is None:
        raise _document_error(
            "invalid_document", "The document is empty; a mapping with `hptuning` is expected."
        )
    if not isinstance(document, dict):
        raise _document_error(
            "invalid_document",
            f"The document must be a mapping at the top level, not {_describe_type(document)}.",
        )
    if "" in document:
        raise _document_error("invalid_document", "A key at the top level is empty.")
    odd_keys = [key for key in document if not isinstance(key, str)]
    if odd_keys:
        # YAML allows `true: 1` or `3: x` as keys; a group document names its parts.
        raise SpecError(
            [
                {"path": str(key), "message": "Keys must be strings.", "type": "invalid_key"}
                for key in odd_keys
            ]
        )
    data, errors = _request_data(document)
    try:
        request = GroupRequest.model_validate(data)
    except ValidationError as exc:
        raise SpecError(errors + _spec_errors(exc)) from None
    if errors:
        raise SpecError(errors)
    return request


def parse_group_document(body: bytes, content_type: str | None) -> GroupRequest:
    """Parse and validate a request body; raise `SpecError` listing every problem."""
    return validate_group_document(load_document(body, content_type))

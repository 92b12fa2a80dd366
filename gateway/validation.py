"""Turning untrusted request input into validated pydantic models, or a 4xx problem.

Bodies are strict: JSON types must match exactly (a float or a number is never an
`amount`), unknown fields and repeated keys are refused, and every failure is a `422`
listing each bad field. A body must be JSON in UTF-8 (no other `charset`, else `415`),
and a write that declares no body takes none (or `{}`). Query strings are coerced from
text (`?limit=20`) but unknown or repeated parameters are refused too. Routes declare
their models in `gateway.registry`, which calls these helpers; handlers receive the
parsed models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.responses import Problem, field_error

MAX_BODY_BYTES = 1024 * 1024
"""Bodies above 1 MiB are refused with 413 before they are read."""

FIELD_CODES: Mapping[str, str] = {
    "amount": "invalid_amount",
    "max_amount": "invalid_amount",
    "currency": "invalid_currency",
}
"""Fields whose errors carry the contract's own code instead of `validation_error`."""

_MAPPING_PARAM = re.compile(r"(\w+)\[([^\[\]]*)\]")
"""`name[key]`: one entry of the mapping query parameter `name`."""

B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


class BodyModel(BaseModel):
    """Base of every JSON request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoBody(BodyModel):
    """The body of a write that takes none: `{}` at most, any field in it is unknown."""


class QueryModel(BaseModel):
    """Base of every query-string model: values coerced from text, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


async def parse_body(request: web.Request, model: type[B]) -> B:
    """Read and validate the JSON body as `model`, or raise a 413/415/422 problem."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Problem(
            413, "payload_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"
        )
    content_type = request.headers.get("Content-Type")
    if content_type is not None and not _is_json(request.content_type):
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    if content_type is not None and (request.charset or "utf-8").lower() not in _UTF8:
        raise Problem(415, "unsupported_media_type", "send the body as JSON in UTF-8")
    raw = await request.read()
    if not raw.strip():
        raise Problem(
            422,
            "validation_error",
            "the request body is empty; send a JSON object",
            errors=[field_error("body", "a JSON object is required")],
        )
    if b"\\u0000" in raw:
        raise Problem(
            422,
            "validation_error",
            "text may not contain NUL characters",
            errors=[field_error("body", "NUL characters are not allowed")],
        )
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise _problem(exc) from None
    if len(_KEY_TOKEN.findall(raw)) != _keys_in(parsed):
        _refuse_repeated_keys(raw)
    return parsed


def parse_query(request: web.Request, model: type[Q]) -> Q:
    """Validate the query string as `model`, or raise a 422 problem.

    `name[key]=value` parameters (`?metadata[order]=1234`) gather into one mapping `name`.
    """
    data: dict[str, Any] = {}
    for name in set(request.query.keys()):
        values = request.query.getall(name)
        if len(values) > 1:
            raise Problem(
                422,
                "validation_error",
                f"query parameter {name!r} is given more than once",
                errors=[field_error(name, "give this parameter once")],
            )
        if not (_clean_text(values[0]) and _clean_text(name)):
            raise Problem(
                422,
                "validation_error",
                f"query parameter {name!r} is not valid text",
                errors=[field_error(name, "invalid characters")],
            )
        nested = _MAPPING_PARAM.fullmatch(name)
        if nested is None:
            data[name] = values[0]
        else:
            data.setdefault(nested[1], {})[nested[2]] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None


_UTF8 = {"utf-8", "utf8"}
_KEY_TOKEN = re.compile(rb'"\s*:')
"""Where a key can end: every key does, and only strings containing `":` add more."""


def _keys_in(value: Any) -> int:
    """The distinct keys a parsed body had: the fields set on each model, the keys of dicts."""
    if isinstance(value, BaseModel):
        keys = len(value.model_fields_set)
        inner: Any = [getattr(value, name) for name in value.model_fields_set]
    elif isinstance(value, dict):
        keys, inner = len(value), value.values()
    else:
        keys, inner = 0, value
    return keys + sum(_keys_in(item) for item in inner if isinstance(item, _NESTED))


_NESTED = (BaseModel, dict, list, tuple)


def _refuse_repeated_keys(raw: bytes) -> None:
    """The exact check, for the rare body whose key count does not settle it at a glance.

    A body that repeats a key would otherwise be read with its last value, silently.
    """

    def distinct(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise Problem(
                    422,
                    "duplicate_key",
                    f"the key {key!r} is given more than once",
                    errors=[field_error(key, "given more than once")],
                )
            found[key] = value
        return found

    json.loads(raw, object_pairs_hook=distinct)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _clean_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_path(loc: tuple[int | str, ...]) -> str:
    """One style for every field in a problem: `transfers[1].amount`, never `transfers.1.amount`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _problem(exc: ValidationError) -> Problem:
    errors: list[dict[str, str]] = []
    code = "validation_error"
    for error in exc.errors(include_url=False, include_input=False):
        field = field_path(error["loc"]) or "body"
        errors.append(field_error(field, _message(error)))
        leaf = str(error["loc"][-1]) if error["loc"] else ""
        custom = error["type"] if error["type"] in FIELD_CODES.values() else None
        if code == "validation_error":
            code = custom or FIELD_CODES.get(leaf, code)
    detail = errors[0]["message"] if len(errors) == 1 else f"{len(errors)} fields are invalid"
    if len(errors) == 1 and errors[0]["field"] != "body":
        detail = f"{errors[0]['field']}: {detail}"
    return Problem(422, code, detail, errors=errors)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind == "model_type":
        return "the body must be a JSON object"
    return str(error["msg"])

"""Turning untrusted request input into validated pydantic models, or a 4xx problem.

Bodies are strict: JSON types must match exactly (a float or a number is never an
`amount`), unknown fields are refused, and every failure is a `422` listing each bad
field. Query strings are coerced from text (`?limit=20`) but unknown or repeated
parameters are refused too. Routes declare their models in `gateway.registry`, which
calls these helpers; handlers receive the parsed models.
"""

from __future__ import annotations

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

B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


class BodyModel(BaseModel):
    """Base of every JSON request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _problem(exc) from None


def parse_query(request: web.Request, model: type[Q]) -> Q:
    """Validate the query string as `model`, or raise a 422 problem."""
    data: dict[str, str] = {}
    for name in set(request.query.keys()):
        values = request.query.getall(name)
        if len(values) > 1:
            raise Problem(
                422,
                "validation_error",
                f"query parameter {name!r} is given more than once",
                errors=[field_error(name, "give this parameter once")],
            )
        if not _clean_text(values[0]):
            raise Problem(
                422,
                "validation_error",
                f"query parameter {name!r} is not valid text",
                errors=[field_error(name, "invalid characters")],
            )
        data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None


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

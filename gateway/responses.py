"""Rendering: JSON bodies with orjson, and RFC 9457 problem details for every error.

A problem is `{type, title, status, detail, code, errors}`; `code` is the stable
snake_case string clients branch on and `errors` points at the offending fields.
Raise `Problem` (or a `ledger_core.errors.DomainError`) anywhere in a handler; the
problem middleware renders it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from gateway.route_spec import API_PREFIX

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:vaultcraft:problem:"


def json_response(
    data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response; `data` must already be plain JSON (strings for money and times)."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def created(data: Any, path: str) -> web.Response:
    """`201 Created` with `Location`: where the new resource is read (`path` under /api/v1)."""
    return json_response(data, status=201, headers={"Location": API_PREFIX + path})


class Problem(Exception):
    """An HTTP-level refusal with its stable code, rendered as problem details."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})


def field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def validation_problem(field: str, message: str, code: str = "validation_error") -> Problem:
    """A 422 for one bad input field."""
    return Problem(422, code, message, errors=[field_error(field, message)])


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [dict(e) for e in errors],
    }
    response = web.Response(body=orjson.dumps(body), status=status, headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="vaultcraft"'}


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers=_UNAUTHORIZED_HEADERS)


def render_problem(problem: Problem) -> web.Response:
    return problem_response(
        problem.status,
        problem.code,
        problem.detail,
        errors=problem.errors,
        headers=problem.headers,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"

"""Every request gets an id, a metric, and on failure an RFC 9457 problem, never a trace.

`observe` (outermost) assigns the request id and records the Prometheus metrics;
`problems` turns every exception into a problem response: domain refusals keep their
code and status, aiohttp's own 404/405/413 become problems, an unreachable database,
Redis or broker is a `503 service_unavailable`, and anything else is logged and answered with a
bare `500`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid

import dramatiq.errors
import psycopg
import redis.exceptions
import sqlalchemy.exc
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

from gateway.error_statuses import status_of
from gateway.responses import Problem, problem_response, render_problem
from gateway.state import REQUEST_ID
from ledger_core.errors import DomainError
from runtime import metrics

log = logging.getLogger("vaultcraft.gateway")

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    dramatiq.errors.BrokerConnectionError,
    ConnectionRefusedError,
)


def request_id_of(request: web.Request) -> str:
    """The caller's X-Request-ID when it is a sane token, else a fresh one."""
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex


def route_label(request: web.Request) -> str:
    """The route template (`/api/v1/wallets/{wallet_id}`), never the raw path."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = request_id_of(request)
    # Each request runs in a task of its own, so what is bound here (and later by the
    # route) stays with this request's log lines, its access line included.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request[REQUEST_ID])
    started = time.perf_counter()
    status = 499  # the client went away before an answer
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        answered, duration = _request_metrics(request.method, route_label(request), status)
        answered.inc()
        duration.observe(time.perf_counter() - started)


@functools.lru_cache(maxsize=4096)
def _request_metrics(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The request counter and duration series of one method, route and status, kept
    once found: `.labels()` costs several times what counting does."""
    return (
        metrics.http_requests_total.labels(method, route, str(status)),
        metrics.http_request_duration_seconds.labels(method, route),
    )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return render_problem(exc)
    except DomainError as exc:
        errors = [] if exc.field is None else [{"field": exc.field, "message": exc.detail}]
        return problem_response(status_of(exc), exc.code, exc.detail, errors=errors)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(exc)
    except _UNAVAILABLE:
        log.warning(
            "A request failed because PostgreSQL or Redis is unreachable (request %s).",
            request.get(REQUEST_ID),
            exc_info=True,
        )
        return problem_response(
            503,
            "service_unavailable",
            "a backing service is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("A request failed unexpectedly (request %s).", request.get(REQUEST_ID))
        return problem_response(500, "internal_error", "an unexpected error occurred")


def _http_problem(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k in {"Allow", "Retry-After"}}
    code = _HTTP_CODES.get(exc.status, "http_error")
    detail = {
        404: "no such route",
        405: "this method is not allowed here",
        413: "the request body is larger than 1 MiB",
    }.get(exc.status, exc.reason)
    return problem_response(exc.status, code, detail, headers=headers)


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: every answer, error or not, carries its X-Request-ID."""
    response.headers["X-Request-ID"] = request.get(REQUEST_ID) or request_id_of(request)

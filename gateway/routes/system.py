"""Operations endpoints: liveness, readiness and Prometheus metrics.

Also served at the root (`/health`, `/ready`, `/metrics`) for probes and scrapers that
do not know the API prefix.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from alembic.config import Config
from alembic.script import ScriptDirectory
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from pydantic import BaseModel
from sqlalchemy import text

import migrations
from gateway.auth import unauthorized
from gateway.client_address import client_address
from gateway.registry import RouteTable
from gateway.responses import Problem, field_error, json_response
from gateway.state import BROKER_PROBE, ENGINE, REDIS, SETTINGS
from ledger_core.services.pipeline import oldest_pending_age
from runtime.metrics_access import Access, metrics_access

routes = RouteTable(tag="Operations")

CHECK_TIMEOUT_S = 2.0


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "degraded"]
    checks: dict[str, str]
    oldest_pending_age_s: float


@routes.get("/health", response=HealthOut, auth=False, aliases=("/health",))
async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers; touches no dependency

    Always `200 {"status": "ok"}` while the process runs; for a load balancer's liveness
    probe. Also served at `/health`.
    """
    return json_response({"status": "ok"})


@routes.get("/ready", response=ReadyOut, auth=False, errors=(503,), aliases=("/ready",))
async def ready(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL, Redis and the broker answer and the schema is at the latest migration.

    `200` with each check when all pass; `503 service_unavailable` naming the failing checks
    otherwise, so a load balancer sends no traffic to a gateway that cannot serve it. Also
    served at `/ready`. `degraded` (still 200) when the oldest PENDING transfer has waited
    longer than `VAULTCRAFT_READY_MAX_PENDING_AGE_S`: posting is stalled or behind, which no
    gateway can fix, so taking gateways out of rotation would only add an outage to the stall.
    The broker's answer is shared for 5 seconds: one probe connection per gateway process
    however often load balancers ask.
    """
    checks = {
        "postgresql": _check_migrations(request.app),
        "redis": _check_redis(request.app),
        "posting": _oldest_pending_age(request.app),
    }
    if BROKER_PROBE in request.app:
        checks["broker"] = request.app[BROKER_PROBE].check()
    outcomes, failures = await _run_checks(checks)
    if failures:
        raise Problem(
            503,
            "service_unavailable",
            "not ready: " + "; ".join(f"{f['field']} {f['message']}" for f in failures),
            errors=failures,
            headers={"Retry-After": "1"},
        )
    waited = next(o for o in outcomes if isinstance(o, float))
    stalled = waited > request.app[SETTINGS].ready_max_pending_age_s
    return json_response(
        {
            "status": "degraded" if stalled else "ready",
            "checks": dict.fromkeys(checks, "ok")
            | {"posting": f"oldest pending transfer waited {waited:.0f} s" if stalled else "ok"},
            "oldest_pending_age_s": round(waited, 3),
        }
    )


async def _run_checks(
    checks: dict[str, Coroutine[Any, Any, object]],
) -> tuple[list[object], list[dict[str, str]]]:
    """Every check at once, each under `CHECK_TIMEOUT_S`: the outcomes, and what failed."""
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(c, CHECK_TIMEOUT_S) for c in checks.values()), return_exceptions=True
    )
    failures: list[dict[str, str]] = []
    for name, outcome in zip(checks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            message = "timed out" if isinstance(outcome, TimeoutError) else type(outcome).__name__
            failures.append(field_error(name, f"unreachable: {message}"))
        elif isinstance(outcome, str) and outcome:
            failures.append(field_error(name, outcome))
    return list(outcomes), failures


async def _check_migrations(app: web.Application) -> str:
    """'' when the database is at the migrations' head, else what is wrong."""
    async with app[ENGINE].connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        current = {row[0] for row in rows}
    heads = migration_heads()
    return "" if current == heads else f"schema at {sorted(current)}, code expects {sorted(heads)}"


async def _oldest_pending_age(app: web.Application) -> float:
    return await oldest_pending_age(app[ENGINE])


async def _check_redis(app: web.Application) -> str:
    await app[REDIS].ping()
    return ""


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@routes.get(
    "/metrics",
    auth=False,
    content_type="text/plain",
    aliases=("/metrics",),
    errors=(401, 404),
)
async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus metrics in the text exposition format (operators)

    With `VAULTCRAFT_METRICS_TOKEN` set, send `Authorization: Bearer <token>` (else `401`);
    without it, only loopback clients are answered and others get `404`.
    """
    access = metrics_access(
        request.app[SETTINGS].metrics_token,
        request.headers.get("Authorization"),
        client_address(request),
    )
    if access is Access.UNAUTHORIZED:
        raise unauthorized("metrics need the operators' bearer token")
    if access is Access.HIDDEN:
        raise Problem(404, "not_found", "no such route")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        payload = generate_latest(registry)
    else:
        payload = generate_latest(REGISTRY)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response

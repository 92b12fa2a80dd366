"""Operations endpoints: liveness, readiness and Prometheus metrics.

Also served at the root (`/health`, `/ready`, `/metrics`) for probes and scrapers that
do not know the API prefix.
"""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

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
from redis.asyncio import Redis
from sqlalchemy import text

import migrations
from gateway.registry import RouteTable
from gateway.responses import Problem, field_error, json_response
from gateway.state import ENGINE, REDIS, SETTINGS
from runtime.settings import is_amqp

routes = RouteTable(tag="Operations")

CHECK_TIMEOUT_S = 2.0


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


@routes.get("/health", response=HealthOut, auth=False, aliases=("/health",))
async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers; touches no dependency

    Always `200 {"status": "ok"}` while the process runs; for a load balancer's liveness
    probe. Also served at `/health`.
    """
    return json_response({"status": "ok"})


@routes.get("/ready", response=ReadyOut, auth=False, errors=(503,), aliases=("/ready",))
async def ready(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL, Redis and the broker answer and the schema is at the latest migration

    `200` with each check when all pass; `503 service_unavailable` naming the failing checks
    otherwise, so a load balancer sends no traffic to a gateway that cannot serve it. Also
    served at `/ready`.
    """
    failures: list[dict[str, str]] = []
    checks = {
        "postgresql": _check_migrations(request.app),
        "redis": _check_redis(request.app),
    }
    broker_url = request.app[SETTINGS].broker_url
    if broker_url:
        checks["broker"] = _check_broker(broker_url)
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(c, CHECK_TIMEOUT_S) for c in checks.values()), return_exceptions=True
    )
    for name, outcome in zip(checks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            message = "timed out" if isinstance(outcome, TimeoutError) else type(outcome).__name__
            failures.append(field_error(name, f"unreachable: {message}"))
        elif outcome:
            failures.append(field_error(name, outcome))
    if failures:
        raise Problem(
            503,
            "service_unavailable",
            "not ready: " + "; ".join(f"{f['field']} {f['message']}" for f in failures),
            errors=failures,
            headers={"Retry-After": "1"},
        )
    return json_response({"status": "ready", "checks": dict.fromkeys(checks, "ok")})


async def _check_migrations(app: web.Application) -> str:
    """'' when the database is at the migrations' head, else what is wrong."""
    async with app[ENGINE].connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        current = {row[0] for row in rows}
    heads = migration_heads()
    return "" if current == heads else f"schema at {sorted(current)}, code expects {sorted(heads)}"


async def _check_redis(app: web.Application) -> str:
    await app[REDIS].ping()
    return ""


async def _check_broker(url: str) -> str:
    """`BROKER_URL` names a broker apart from `REDIS_URL`: RabbitMQ, or another Redis."""
    if is_amqp(url):
        from messaging.rabbit import check_reachable

        await asyncio.to_thread(check_reachable, url)
        return ""
    client = Redis.from_url(url)
    try:
        await client.ping()
    finally:
        await client.aclose()
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
)
async def prometheus_metrics(request: web.Request) -> web.Response:
    """Prometheus metrics in the text exposition format

    Counters and histograms of the gateway (and of the process group, in multi-process mode)
    for a Prometheus scraper.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        payload = generate_latest(registry)
    else:
        payload = generate_latest(REGISTRY)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response

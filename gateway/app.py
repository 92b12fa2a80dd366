"""The gateway's application factory: state, middlewares and every route table.

`create_app(settings)` is all a server or a test needs. Resources (the database engine
and Redis) are opened when the app starts and closed when it stops, in `cleanup_ctx`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.broker_probe import BrokerProbe
from gateway.credential_listener import credential_listener
from gateway.hashing import hashing_context
from gateway.intake import intake_context
from gateway.key_cache import KeyCache
from gateway.middlewares import observe, problems, stamp_request_id
from gateway.protocol_errors import stamp_server
from gateway.rate_buckets import RateLimiter
from gateway.rate_limit import stamp_rate_limit
from gateway.registry import RouteTable
from gateway.routes import (
    analytics,
    api_keys,
    audit,
    auth,
    counterparties,
    dashboard,
    docs,
    history,
    organizations,
    reconciliations,
    risk_rules,
    settlements,
    system,
    transaction_reads,
    transactions,
    users,
    wallets,
    webhooks,
)
from gateway.state import (
    BROKER_PROBE,
    ENGINE,
    KEY_CACHE,
    OPENAPI_CACHE,
    RATE_LIMITER,
    REDIS,
    ROUTES,
    SETTINGS,
    USER_CACHE,
    WAITER,
)
from gateway.user_cache import ActiveUserCache
from gateway.validation import MAX_BODY_BYTES
from runtime.embedded import ensure_services
from runtime.settings import Settings

ROUTE_TABLES: tuple[RouteTable, ...] = (
    system.routes,
    docs.routes,
    auth.routes,
    users.routes,
    api_keys.routes,
    organizations.routes,
    transactions.routes,
    transaction_reads.routes,
    wallets.routes,
    history.routes,
    risk_rules.routes,
    analytics.routes,
    webhooks.routes,
    audit.routes,
    counterparties.routes,
    settlements.routes,
    reconciliations.routes,
)
"""Every area's routes, in registration order (fixed paths before `{id}` ones of an area)."""


def create_app(settings: Settings) -> web.Application:
    """Build the gateway. Missing database/Redis URLs start the embedded servers; a missing
    `VAULTCRAFT_JWT_SECRET` is kept in the data dir."""
    settings = settings.with_jwt_secret()
    if not settings.database_url or not settings.redis_url:
        urls = ensure_services(settings.data_dir, settings.database_url, settings.redis_url)
        settings = dataclasses.replace(
            settings, database_url=urls.database_url, redis_url=urls.redis_url
        )
    app = web.Application(middlewares=[observe, problems], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[ROUTES] = []
    app[USER_CACHE] = ActiveUserCache()
    app[KEY_CACHE] = KeyCache()
    app[OPENAPI_CACHE] = {}
    if settings.broker_url:
        app[BROKER_PROBE] = BrokerProbe(settings.broker_url)
    for table in ROUTE_TABLES:
        table.register(app)
    docs.add_assets(app)
    dashboard.add_dashboard(app)
    app.on_response_prepare.append(stamp_request_id)
    app.on_response_prepare.append(stamp_rate_limit)
    app.on_response_prepare.append(stamp_server)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(intake_context)
    app.cleanup_ctx.append(credential_listener)
    app.cleanup_ctx.append(hashing_context)
    app.on_shutdown.append(_release_long_polls)
    return app


async def _release_long_polls(app: web.Application) -> None:
    """On SIGTERM, before waiting for handlers: answer long polls now rather than drop them."""
    waiter = app.get(WAITER)
    if waiter is not None:
        waiter.release_all()


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_async_engine(
        app[SETTINGS].sqlalchemy_url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    app[ENGINE] = engine
    yield
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    assert url is not None  # resolved in create_app
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    app[REDIS] = client
    app[RATE_LIMITER] = RateLimiter(client)
    yield
    await client.aclose()

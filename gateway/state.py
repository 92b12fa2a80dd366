"""Typed application and request state: what handlers may find on `app[...]` and `request[...]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal
from runtime.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gateway.final_waiter import FinalWaiter
    from gateway.route_spec import RouteSpec
    from gateway.user_cache import ActiveUserCache
    from ledger_core.services.transfers import GroupCommitter

SETTINGS = web.AppKey("settings", Settings)
"""Settings with database and Redis URLs resolved (embedded servers started if needed)."""

ENGINE = web.AppKey("engine", AsyncEngine)
"""The SQLAlchemy async engine (psycopg 3); open a transaction with `engine.begin()`."""

REDIS: web.AppKey[Redis] = web.AppKey("redis")
"""Redis, for login throttling and other short-lived counters."""

ROUTES: web.AppKey[list[RouteSpec]] = web.AppKey("routes")
"""Every declared route, in registration order; the OpenAPI document is built from it."""

USER_CACHE: web.AppKey[ActiveUserCache] = web.AppKey("active_user_cache")
"""Recent answers to "is this token's user still active, and with which role?"."""

OPENAPI_CACHE: web.AppKey[dict[str, Any]] = web.AppKey("openapi_cache")
"""The OpenAPI document, built on first request."""

COMMITTER: web.AppKey[GroupCommitter] = web.AppKey("intake_committer")
"""Group commit of single transfer intents: many requests, one database transaction."""

WAITER: web.AppKey[FinalWaiter] = web.AppKey("final_waiter")
"""Wakes long polls when a transfer becomes final."""


REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)

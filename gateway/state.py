"""Typed application and request state: what handlers may find on `app[...]` and `request[...]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal
from ledger_core.api_keys import RateLimit
from runtime.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gateway.broker_probe import BrokerProbe
    from gateway.final_waiter import FinalWaiter
    from gateway.key_cache import KeyCache
    from gateway.rate_buckets import RateLimiter
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

KEY_CACHE: web.AppKey[KeyCache] = web.AppKey("api_key_cache")
"""Recent answers to "which organization and scopes does this API key have?"."""

RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
"""The token buckets in Redis shared by every gateway process."""

OPENAPI_CACHE: web.AppKey[dict[str, Any]] = web.AppKey("openapi_cache")
"""The OpenAPI document, built on first request."""

COMMITTER: web.AppKey[GroupCommitter] = web.AppKey("intake_committer")
"""Group commit of single transfer intents: many requests, one database transaction."""

BROKER_PROBE: web.AppKey[BrokerProbe] = web.AppKey("broker_probe")
"""The `/ready` check of the broker `BROKER_URL` names (absent without one), cached briefly."""

WAITER: web.AppKey[FinalWaiter] = web.AppKey("final_waiter")
"""Wakes long polls when a transfer becomes final."""


REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
KEY_RATE_LIMIT = web.RequestKey("api_key_rate_limit", RateLimit)
"""The calling API key's own rate limit, when it was created with one."""
RATE_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("rate_limit_headers")
"""`RateLimit-*` headers for the response of an authenticated request."""

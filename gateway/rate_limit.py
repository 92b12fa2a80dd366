"""Rate limits per organization and per API key: token buckets in Redis.

Every authenticated request takes one token from its organization's bucket
(`VAULTCRAFT_RATE_LIMIT_PER_S` tokens a second, up to `VAULTCRAFT_RATE_LIMIT_BURST`) and,
for a key created with a limit of its own, from the key's bucket too. One Lua script
refills and takes from all of a request's buckets atomically, on Redis's clock, so every
gateway process shares the same buckets. Over a limit: `429 rate_limited` with
`Retry-After`. Every authenticated response carries `RateLimit-Limit`,
`RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full again),
for the bucket nearest to empty.

If Redis cannot be reached the request goes through unlimited (fail open) and
`vaultcraft_rate_limit_fail_open_total` counts it: an unreachable Redis must not stop
payments, and it already shows on `/ready` and in the broker's alerts.
"""

from __future__ import annotations

import logging

import redis.exceptions
from aiohttp import web

from gateway.responses import Problem
from gateway.state import KEY_RATE_LIMIT, RATE_HEADERS, RATE_LIMITER, SETTINGS
from ledger_core.accounts import Principal
from ledger_core.api_keys import RateLimit
from runtime import metrics

log = logging.getLogger("vaultcraft.gateway")

_PREFIX = "vaultcraft:rate"


def buckets_of(request: web.Request, who: Principal) -> list[tuple[str, RateLimit]]:
    """The organization's bucket (when the operator set a limit) and the key's own."""
    settings = request.app[SETTINGS]
    buckets = []
    if settings.rate_limit_per_s > 0:
        org_limit = RateLimit(settings.rate_limit_per_s, settings.rate_limit_burst)
        buckets.append((f"{_PREFIX}:org:{who.organization_id}", org_limit))
    own = request.get(KEY_RATE_LIMIT)
    if own is not None and who.key_id is not None:
        buckets.append((f"{_PREFIX}:key:{who.key_id}", own))
    return buckets


async def enforce_rate_limit(request: web.Request, who: Principal) -> None:
    """Spend one token for this request, or refuse it with `429 rate_limited`."""
    buckets = buckets_of(request, who)
    if not buckets:
        return
    try:
        verdict = await request.app[RATE_LIMITER].take(buckets)
    except (redis.exceptions.RedisError, OSError):
        metrics.rate_limit_fail_open_total.inc()
        log.warning("Rate limits are not enforced: Redis is unreachable.", exc_info=True)
        return
    request[RATE_HEADERS] = verdict.headers()
    if not verdict.allowed:
        raise Problem(
            429,
            "rate_limited",
            "too many requests; slow down",
            headers={"Retry-After": str(verdict.retry_after_s)},
        )


async def stamp_rate_limit(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: the `RateLimit-*` headers of this request, if any."""
    response.headers.update(request.get(RATE_HEADERS) or {})

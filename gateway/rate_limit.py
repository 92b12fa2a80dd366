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
import math
from dataclasses import dataclass

import redis.exceptions
from aiohttp import web
from redis.asyncio import Redis

from gateway.responses import Problem
from gateway.state import KEY_RATE_LIMIT, RATE_HEADERS, RATE_LIMITER, SETTINGS
from ledger_core.accounts import Principal
from ledger_core.api_keys import RateLimit
from runtime import metrics

log = logging.getLogger("vaultcraft.gateway")

_PREFIX = "vaultcraft:rate"

# KEYS: the buckets; ARGV: rate and burst of each bucket, in the same order.
# Returns: allowed (1/0), then the limiting bucket's burst, remaining tokens,
# milliseconds until it is full, and milliseconds until one token is back.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = {}
local allowed = 1
for i, key in ipairs(KEYS) do
    local rate = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    local state = redis.call('HMGET', key, 'tokens', 'ts')
    local have = tonumber(state[1])
    local ts = tonumber(state[2])
    if have == nil or ts == nil then
        have = burst
        ts = now
    end
    have = math.min(burst, have + math.max(0, now - ts) * rate / 1000)
    tokens[i] = have
    if have < 1 then allowed = 0 end
end
local worst = 1
local worst_left = nil
for i, key in ipairs(KEYS) do
    local rate = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    if allowed == 1 then tokens[i] = tokens[i] - 1 end
    redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'ts', tostring(now))
    redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
    if worst_left == nil or tokens[i] / burst < worst_left then
        worst = i
        worst_left = tokens[i] / burst
    end
end
local rate = tonumber(ARGV[2 * worst - 1])
local burst = tonumber(ARGV[2 * worst])
local left = tokens[worst]
local full_ms = math.ceil((burst - left) * 1000 / rate)
local retry_ms = 0
if left < 1 then retry_ms = math.ceil((1 - left) * 1000 / rate) end
return {allowed, burst, math.floor(left), full_ms, retry_ms}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


class RateLimiter:
    """The buckets of one Redis; `take` spends one token from each bucket given."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_TAKE)

    async def take(self, buckets: list[tuple[str, RateLimit]]) -> Verdict:
        keys = [name for name, _ in buckets]
        args: list[int] = []
        for _, limit in buckets:
            args.extend((limit.per_s, limit.burst))
        allowed, limit, remaining, full_ms, retry_ms = await self._script(keys=keys, args=args)
        return Verdict(
            allowed=bool(allowed),
            limit=int(limit),
            remaining=max(0, int(remaining)),
            reset_s=math.ceil(int(full_ms) / 1000),
            retry_after_s=max(1, math.ceil(int(retry_ms) / 1000)),
        )


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

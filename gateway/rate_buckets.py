"""Token buckets in Redis: one Lua script refills and spends from a request's buckets at
once, on Redis's clock, so every gateway process shares them (see `gateway.rate_limit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from ledger_core.api_keys import RateLimit

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
    local share = tokens[i] / burst
    if tokens[i] < 1 then share = -1 end -- an empty bucket is the one to report
    if worst_left == nil or share < worst_left then
        worst = i
        worst_left = share
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

"""Token buckets in Redis: one Lua script refills and spends from the buckets of every
request waiting at that moment, on Redis's clock, so every gateway process shares them
(see `gateway.rate_limit`).

Requests that arrive while a call is in flight wait for the next one, which carries them
all: under load a gateway makes one Redis round trip per group of requests instead of one
per request (as the intake's group commit does for PostgreSQL). Inside the script the
requests are served one after another, in arrival order, exactly as separate calls would be.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from ledger_core.api_keys import RateLimit

# KEYS: every bucket named by the requests. ARGV: the number of requests, then for each
# request its number of buckets and, for each bucket, its index in KEYS, rate and burst.
# Returns, for each request in order: allowed (1/0), the limiting bucket's burst, its
# remaining tokens, milliseconds until it is full, and milliseconds until one token is back.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local have, limits, out = {}, {}, {}
local at = 2
for r = 1, tonumber(ARGV[1]) do
    local n = tonumber(ARGV[at])
    local idx, rates, bursts, tokens = {}, {}, {}, {}
    local allowed = 1
    for b = 1, n do
        local i = tonumber(ARGV[at + 3 * b - 2])
        idx[b], rates[b], bursts[b] = i, tonumber(ARGV[at + 3 * b - 1]), tonumber(ARGV[at + 3 * b])
        if have[i] == nil then
            local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
            local left, ts = tonumber(state[1]), tonumber(state[2])
            if left == nil or ts == nil then
                left, ts = bursts[b], now
            end
            have[i] = math.min(bursts[b], left + math.max(0, now - ts) * rates[b] / 1000)
            limits[i] = {rates[b], bursts[b]}
        end
        tokens[b] = have[i]
        if tokens[b] < 1 then allowed = 0 end
    end
    at = at + 1 + 3 * n
    local worst, worst_left = 1, nil
    for b = 1, n do
        if allowed == 1 then tokens[b] = tokens[b] - 1 end
        have[idx[b]] = tokens[b]
        local share = tokens[b] / bursts[b]
        if tokens[b] < 1 then share = -1 end -- an empty bucket is the one to report
        if worst_left == nil or share < worst_left then
            worst, worst_left = b, share
        end
    end
    local left = tokens[worst]
    local full_ms = math.ceil((bursts[worst] - left) * 1000 / rates[worst])
    local retry_ms = 0
    if left < 1 then retry_ms = math.ceil((1 - left) * 1000 / rates[worst]) end
    for _, v in ipairs({allowed, bursts[worst], math.floor(left), full_ms, retry_ms}) do
        out[#out + 1] = v
    end
end
for i, left in pairs(have) do
    local rate, burst = limits[i][1], limits[i][2]
    redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return out
"""

Buckets = Sequence[tuple[str, RateLimit]]


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


def script_args(requests: Sequence[Buckets]) -> tuple[list[str], list[int]]:
    """KEYS and ARGV of `_TAKE` for these requests' buckets."""
    keys: dict[str, int] = {}
    args: list[int] = [len(requests)]
    for buckets in requests:
        args.append(len(buckets))
        for name, limit in buckets:
            index = keys.setdefault(name, len(keys) + 1)
            args.extend((index, limit.per_s, limit.burst))
    return list(keys), args


def verdicts(reply: Sequence[int], count: int) -> list[Verdict]:
    """The script's flat reply, five numbers a request, as verdicts."""
    found = []
    for n in range(count):
        allowed, limit, remaining, full_ms, retry_ms = reply[5 * n : 5 * n + 5]
        found.append(
            Verdict(
                allowed=bool(allowed),
                limit=int(limit),
                remaining=max(0, int(remaining)),
                reset_s=math.ceil(int(full_ms) / 1000),
                retry_after_s=max(1, math.ceil(int(retry_ms) / 1000)),
            )
        )
    return found


class RateLimiter:
    """The buckets of one Redis; `take` spends one token from each bucket given."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_TAKE)
        self._waiting: list[tuple[Buckets, asyncio.Future[Verdict]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def take(self, buckets: Buckets) -> Verdict:
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiting.append((buckets, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="rate-limits")
        return await future

    async def _send_all(self) -> None:
        """Send what is waiting, one call at a time, until nothing is."""
        group: list[tuple[Buckets, asyncio.Future[Verdict]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._send(group)
        except asyncio.CancelledError:
            for _, future in group + self._waiting:
                future.cancel()
            raise
        finally:
            self._sender = None

    async def _send(self, group: list[tuple[Buckets, asyncio.Future[Verdict]]]) -> None:
        keys, args = script_args([buckets for buckets, _ in group])
        try:
            reply = await self._script(keys=keys, args=args)
        except Exception as exc:  # every waiting request decides (fails open) on its own
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), verdict in zip(group, verdicts(reply, len(group)), strict=True):
            if not future.done():
                future.set_result(verdict)

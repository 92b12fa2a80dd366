"""Token buckets in Redis: one Lua script refills and spends from the buckets of every
request waiting at that moment, on Redis's clock, so every gateway process shares them
(see `gateway.rate_limit`).

Requests that arrive while a call is in flight wait for the next one, which carries them
all: under load a gateway makes one Redis round trip per group of requests instead of one
per request (as the intake's group commit does for PostgreSQL). Inside the script the
requests are served one after another, in arrival order, exactly as separate calls would be.

A large bucket is also spent in leases. A request whose only bucket refills at 200 tokens
a second or more asks for a hundredth of a second's tokens at once (`lease_size`). They
leave the bucket in Redis then and there, and this process spends them on its next requests
without asking Redis, for at most `LEASE_S`. Each of those requests still spends exactly
one token of the shared bucket, and no process can spend a token that another holds. The
difference from a call per request: a process may refuse while another still holds up to
a lease's worth, and what a lease leaves unspent when it expires is lost, never more than
10 ms of the bucket's rate. A request served from a lease makes no round trip at all,
which matters because every round trip waits for a turn of the busy event loop, on the
way to Redis and back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from ledger_core.api_keys import RateLimit

# KEYS: every bucket named by the requests. ARGV: the number of requests, then for each
# request its number of buckets, the tokens it asks for and, for each bucket, its index in
# KEYS, rate and burst. A request is allowed when each of its buckets holds a token; it
# then takes as many as it asked for that every bucket holds (at least one) from each.
# Returns, for each request in order: allowed (1/0), the limiting bucket's burst, its
# remaining tokens, milliseconds until it is full, milliseconds until one token is back,
# and the tokens taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local have, limits, out = {}, {}, {}
local at = 2
for r = 1, tonumber(ARGV[1]) do
    local n, wanted = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local idx, rates, bursts, tokens = {}, {}, {}, {}
    local allowed = 1
    for b = 1, n do
        local i = tonumber(ARGV[at + 3 * b - 1])
        idx[b], rates[b], bursts[b] = i, tonumber(ARGV[at + 3 * b]), tonumber(ARGV[at + 3 * b + 1])
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
        wanted = math.min(wanted, math.floor(tokens[b]))
    end
    at = at + 2 + 3 * n
    local taken = 0
    if allowed == 1 then taken = wanted end
    local worst, worst_left = 1, nil
    for b = 1, n do
        tokens[b] = tokens[b] - taken
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
    for _, v in ipairs({allowed, bursts[worst], math.floor(left), full_ms, retry_ms, taken}) do
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

LEASE_WORTH_S = 0.01
"""A lease holds at most this many seconds' worth of the bucket's rate."""
LEASE_S = 1.0
"""A lease's tokens are spent within this long, or lost."""
REPLY_WIDTH = 6
"""Numbers the script returns for each request."""


def lease_size(limit: RateLimit, worth_s: float = LEASE_WORTH_S) -> int:
    """Tokens a request alone on this bucket asks for at once; 1 means no lease."""
    return max(1, int(limit.per_s * worth_s))


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


def script_args(requests: Sequence[tuple[Buckets, int]]) -> tuple[list[str], list[int]]:
    """KEYS and ARGV of `_TAKE` for these requests' buckets and the tokens each asks for."""
    keys: dict[str, int] = {}
    args: list[int] = [len(requests)]
    for buckets, wanted in requests:
        args.extend((len(buckets), wanted))
        for name, limit in buckets:
            index = keys.setdefault(name, len(keys) + 1)
            args.extend((index, limit.per_s, limit.burst))
    return list(keys), args


def verdicts(reply: Sequence[int], count: int) -> list[tuple[Verdict, int]]:
    """The script's flat reply, six numbers a request, as verdicts with the tokens taken."""
    found = []
    for n in range(count):
        allowed, limit, remaining, full_ms, retry_ms, taken = reply[
            REPLY_WIDTH * n : REPLY_WIDTH * (n + 1)
        ]
        verdict = Verdict(
            allowed=bool(allowed),
            limit=int(limit),
            remaining=max(0, int(remaining)),
            reset_s=math.ceil(int(full_ms) / 1000),
            retry_after_s=max(1, math.ceil(int(retry_ms) / 1000)),
        )
        found.append((verdict, int(taken)))
    return found


@dataclass
class Lease:
    """Tokens already taken from one bucket, for this process's next requests on it."""

    limit: RateLimit
    tokens: int
    left_in_bucket: int
    """What the bucket held once the lease was taken: a request served from the lease
    reports this plus the lease's own tokens as its remaining, as if it had asked Redis."""
    until: float

    def spend(self, now: float) -> Verdict | None:
        """One token's verdict, or None when the lease is spent or expired."""
        if self.tokens < 1 or now >= self.until:
            return None
        self.tokens -= 1
        remaining = self.left_in_bucket + self.tokens
        full_ms = (self.limit.burst - remaining) * 1000 / self.limit.per_s
        return Verdict(True, self.limit.burst, remaining, math.ceil(full_ms / 1000), 1)


class RateLimiter:
    """The buckets of one Redis; `take` spends one token from each bucket given."""

    def __init__(self, redis: Redis, lease_worth_s: float = LEASE_WORTH_S) -> None:
        self._script = redis.register_script(_TAKE)
        self._lease_worth_s = lease_worth_s
        self._waiting: list[tuple[Buckets, asyncio.Future[Verdict]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._leases: dict[str, Lease] = {}

    async def take(self, buckets: Buckets) -> Verdict:
        leased = self._from_lease(buckets)
        if leased is not None:
            return leased
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

    def _from_lease(self, buckets: Buckets) -> Verdict | None:
        if len(buckets) != 1:
            return None
        name, limit = buckets[0]
        lease = self._leases.get(name)
        if lease is None or lease.limit != limit:
            return None
        return lease.spend(time.monotonic())

    def _wanted(self, group: list[tuple[Buckets, asyncio.Future[Verdict]]]) -> list[int]:
        """The tokens each request asks for: a lease for the first request of a group that
        is alone on a large bucket, one token for every other request."""
        asked: set[str] = set()
        wanted = []
        for buckets, _ in group:
            size = lease_size(buckets[0][1], self._lease_worth_s) if len(buckets) == 1 else 1
            if size > 1 and buckets[0][0] not in asked:
                asked.add(buckets[0][0])
                wanted.append(size)
            else:
                wanted.append(1)
        return wanted

    def _lease(
        self, bucket: tuple[str, RateLimit], tokens: int, verdict: Verdict, now: float
    ) -> Verdict:
        """Keep `tokens` taken beyond the request's own (with what an unexpired lease on the
        bucket still holds); the request reports them as remaining, as they still are."""
        name, limit = bucket
        held = self._leases.get(name)
        if held is not None and held.limit == limit:
            tokens += held.tokens
        self._leases[name] = Lease(limit, tokens, verdict.remaining, now + LEASE_S)
        return dataclasses.replace(verdict, remaining=verdict.remaining + tokens)

    async def _send(self, group: list[tuple[Buckets, asyncio.Future[Verdict]]]) -> None:
        wanted = self._wanted(group)
        keys, args = script_args([(b, w) for (b, _), w in zip(group, wanted, strict=True)])
        try:
            reply = await self._script(keys=keys, args=args)
        except Exception as exc:  # every waiting request decides (fails open) on its own
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        now = time.monotonic()
        self._leases = {name: lease for name, lease in self._leases.items() if lease.until > now}
        answers = verdicts(reply, len(group))
        for (buckets, future), (verdict, taken) in zip(group, answers, strict=True):
            if taken > 1:
                verdict = self._lease(buckets[0], taken - 1, verdict, now)
            if not future.done():
                future.set_result(verdict)

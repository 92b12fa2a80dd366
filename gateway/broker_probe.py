"""The broker check of `/ready`, remembered for a few seconds.

Load balancers ask `/ready` every few seconds on every gateway process; opening an AMQP
connection (or a Redis client) for each would make the probes themselves a load on the
broker, and a storm of them when it is down. One probe runs at a time, its outcome is
kept for `ttl_s`, and every readiness request in between shares it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from runtime.settings import is_amqp

BROKER_CHECK_TTL_S = 5.0


class BrokerProbe:
    """'' when the broker answered at most `ttl_s` ago, else why not; probes are shared."""

    def __init__(self, url: str, ttl_s: float = BROKER_CHECK_TTL_S) -> None:
        self._probe: Callable[[], Awaitable[None]] = (
            _amqp_probe(url) if is_amqp(url) else (_redis_probe(url))
        )
        self._ttl_s = ttl_s
        self._outcome: tuple[float, str] | None = None
        self._running: asyncio.Task[str] | None = None

    async def check(self) -> str:
        now = time.monotonic()
        if self._outcome is not None and now - self._outcome[0] < self._ttl_s:
            return self._outcome[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._running)  # a caller's timeout leaves it to the others

    async def _run(self) -> str:
        try:
            await self._probe()
            outcome = ""
        except Exception as exc:  # any failure to reach the broker is the answer itself
            outcome = f"unreachable: {type(exc).__name__}"
        self._outcome = (time.monotonic(), outcome)
        return outcome


def _amqp_probe(url: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        from messaging.rabbit import check_reachable  # pika only when RabbitMQ is used

        await asyncio.to_thread(check_reachable, url)

    return probe


def _redis_probe(url: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        client = Redis.from_url(url)
        try:
            await client.ping()
        finally:
            await client.aclose()

    return probe

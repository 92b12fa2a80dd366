"""Password hashing on bounded thread pools, so a flood of signups cannot starve logins.

bcrypt is slow on purpose, and a hash holds a CPU core for its whole duration. Hashes of
new passwords (signup, an admin adding a user) and checks of logins run on two separate
pools: a burst of signups queues behind itself, and a login never waits for a signup's
thread. Each pool runs at most `threads` hashes at once and lets at most `queue` more
wait, each for at most `wait_s`; a request beyond that is answered at once with
`503 service_unavailable` and `Retry-After`, instead of joining a queue that only grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from gateway.responses import Problem

T = TypeVar("T")


class HashingPool:
    """A few threads for bcrypt, with a bounded number of callers waiting for them."""

    def __init__(self, name: str, *, threads: int, queue: int, wait_s: float) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._slots = asyncio.Semaphore(threads + queue)
        self._running = asyncio.Semaphore(threads)
        self._wait_s = wait_s

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` on a pool thread, or a 503 when the pool is full or too slow."""
        if self._slots.locked():
            raise _busy()
        async with self._slots:
            try:
                await asyncio.wait_for(self._running.acquire(), self._wait_s)
            except TimeoutError:
                raise _busy() from None
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self.executor, work, *args)
            finally:
                self._running.release()


HASHING: web.AppKey[Hashing] = web.AppKey("hashing")
"""The bounded bcrypt pools: one for new passwords, one for login checks."""


@dataclass(frozen=True)
class Hashing:
    new_passwords: HashingPool
    """Hashes of passwords being set: signup, an admin adding a user."""
    logins: HashingPool
    """Checks of a login's password against the stored hash."""


async def hashing_context(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: the two pools live as long as the app."""
    hashing = Hashing(
        new_passwords=HashingPool("hash-new", threads=1, queue=8, wait_s=3.0),
        logins=HashingPool("hash-login", threads=2, queue=64, wait_s=5.0),
    )
    app[HASHING] = hashing
    yield
    for pool in (hashing.new_passwords, hashing.logins):
        pool.executor.shutdown(wait=True, cancel_futures=True)


def _busy() -> Problem:
    return Problem(
        503,
        "service_unavailable",
        "password hashing is busy; retry shortly",
        headers={"Retry-After": "1"},
    )

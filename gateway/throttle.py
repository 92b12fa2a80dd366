"""Login throttling: repeated failures for one email, or from one address, are slowed down.

Failures are counted in Redis in fixed windows. An email is locked after
`EMAIL_FAILURES` failures in `WINDOW_S`; a client address after `ADDRESS_FAILURES`
(higher: many people share an office's address). While locked, even the right password
gets `429 too_many_attempts` with `Retry-After`, so guessing stays pointless. A success
clears the email's count.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from gateway.responses import Problem

WINDOW_S = 15 * 60
EMAIL_FAILURES = 5
ADDRESS_FAILURES = 20
_PREFIX = "vaultcraft:login-failures"


def email_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
    return f"{_PREFIX}:email:{digest}"


def address_key(address: str | None) -> str:
    return f"{_PREFIX}:address:{address or 'unknown'}"


async def check_login_allowed(redis: Redis, email: str, address: str | None) -> None:
    """Raise 429 with Retry-After while the email or the address is locked out."""
    keys = [(email_key(email), EMAIL_FAILURES), (address_key(address), ADDRESS_FAILURES)]
    async with redis.pipeline(transaction=False) as pipe:
        for key, _ in keys:
            pipe.get(key)
            pipe.ttl(key)
        answers = await pipe.execute()
    retry_after = 0
    for index, (_, limit) in enumerate(keys):
        count, ttl = answers[2 * index], answers[2 * index + 1]
        if count is not None and int(count) >= limit:
            retry_after = max(retry_after, ttl if ttl > 0 else WINDOW_S)
    if retry_after:
        raise Problem(
            429,
            "too_many_attempts",
            "too many failed logins; try again later",
            headers={"Retry-After": str(retry_after)},
        )


async def record_login_failure(redis: Redis, email: str, address: str | None) -> None:
    """Count one failure for the email and the address, each in its current window."""
    async with redis.pipeline(transaction=True) as pipe:
        for key in (email_key(email), address_key(address)):
            pipe.set(key, 0, ex=WINDOW_S, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        await pipe.execute()


async def clear_login_failures(redis: Redis, email: str) -> None:
    await redis.delete(email_key(email))

"""Login and signup throttling: repeated attempts for one email, or from one address.

Attempts are counted in Redis in fixed windows of `WINDOW_S`. An email is locked after
`EMAIL_FAILURES` failed logins; a client address after `ADDRESS_FAILURES` (higher: many
people share an office's address). While locked, even the right password gets
`429 too_many_attempts` with `Retry-After`, so guessing stays pointless. A success
clears the email's count. Signups are counted per client address, successful or not
(each costs a bcrypt hash); beyond `VAULTCRAFT_SIGNUP_LIMIT` in a window they get the
same 429.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from gateway.responses import Problem

WINDOW_S = 15 * 60
EMAIL_FAILURES = 5
ADDRESS_FAILURES = 20
_PREFIX = "vaultcraft:login-failures"
_SIGNUP_PREFIX = "vaultcraft:signups"


def email_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
    return f"{_PREFIX}:email:{digest}"


def address_key(address: str | None) -> str:
    return f"{_PREFIX}:address:{address or 'unknown'}"


def signup_key(address: str | None) -> str:
    return f"{_SIGNUP_PREFIX}:address:{address or 'unknown'}"


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
        raise too_many_attempts("too many failed logins; try again later", retry_after)


async def record_login_failure(redis: Redis, email: str, address: str | None) -> None:
    """Count one failure for the email and the address, each in its current window."""
    await _count(redis, email_key(email), address_key(address))


async def count_signup(redis: Redis, address: str | None, limit: int) -> None:
    """Count a signup from `address`; past `limit` in the window, raise 429 with Retry-After."""
    count, ttl = await _count(redis, signup_key(address))
    if count > limit:
        raise too_many_attempts("too many signups from this address; try again later", ttl)


def too_many_attempts(detail: str, retry_after: int) -> Problem:
    seconds = retry_after if retry_after > 0 else WINDOW_S
    return Problem(429, "too_many_attempts", detail, headers={"Retry-After": str(seconds)})


async def _count(redis: Redis, *keys: str) -> tuple[int, int]:
    """Add one to each key in its current window; the first key's count and seconds left."""
    async with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.set(key, 0, ex=WINDOW_S, nx=True)  # the window starts at the first attempt
            pipe.incr(key)
        pipe.ttl(keys[0])
        answers = await pipe.execute()
    return int(answers[1]), int(answers[-1])


async def clear_login_failures(redis: Redis, email: str) -> None:
    await redis.delete(email_key(email))

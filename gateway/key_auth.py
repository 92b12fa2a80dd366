"""API keys at the edge: who a `Bearer vk_...` key is, checked at most a second ago.

A presented key is looked up by its id (the primary key) and its secret compared in
constant time with the stored SHA-256 (`ledger_core.api_keys.secret_matches`). Answers
are remembered for `KeyCache.ttl_s` (one second), so a key revoked through any gateway
process is refused by every other within a second, and at once by the one that revoked
it. A use is written to `last_used_at` at most once a minute per key.
"""

from __future__ import annotations

import time
from uuid import UUID

from aiohttp import web

from gateway.responses import unauthorized
from gateway.state import ENGINE, KEY_CACHE, KEY_RATE_LIMIT
from ledger_core.accounts import Principal
from ledger_core.api_keys import RateLimit
from ledger_core.services import api_keys

TOUCH_EVERY_S = 60.0

KeyAnswer = tuple[Principal, RateLimit | None]
"""Who a valid key acts as, and its own rate limit if it was given one."""


class KeyCache:
    """Recent answers to "who is this key?", and when each key's use was last written."""

    def __init__(self, ttl_s: float = 1.0, max_size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._answers: dict[str, tuple[float, KeyAnswer | None]] = {}
        self._touched: dict[UUID, float] = {}

    def get(self, key: str) -> tuple[bool, KeyAnswer | None]:
        hit = self._answers.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, answer: KeyAnswer | None) -> None:
        if len(self._answers) >= self.max_size:
            self._answers.clear()
        self._answers[key] = (time.monotonic() + self.ttl_s, answer)

    def forget_all(self) -> None:
        """After a revocation here: nothing remembered may outlive it."""
        self._answers.clear()

    def due_for_touch(self, key_id: UUID) -> bool:
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return False
        if len(self._touched) >= self.max_size:
            self._touched.clear()
        self._touched[key_id] = now
        return True


async def authenticate_key(request: web.Request, key: str) -> Principal:
    """The principal of a valid key; malformed, unknown, revoked or expired keys are 401."""
    cache = request.app[KEY_CACHE]
    known, answer = cache.get(key)
    if not known:
        resolved = await api_keys.key_principal(request.app[ENGINE], key)
        answer = None if resolved is None else (resolved[0], resolved[1].rate_limit)
        cache.put(key, answer)
    if answer is None:
        raise unauthorized("the API key is invalid, revoked or expired")
    found, own_limit = answer
    if own_limit is not None:
        request[KEY_RATE_LIMIT] = own_limit
    if found.key_id is not None and cache.due_for_touch(found.key_id):
        await api_keys.touch_key(request.app[ENGINE], found.key_id)
    return found

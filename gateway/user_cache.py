"""Which users are active, remembered for about a second per user, and verified tokens."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from ledger_core.accounts import Principal


class ActiveUserCache:
    """Recently seen active users, so a burst of requests costs one lookup per second.

    A deactivated user is refused at most `ttl_s` after the change. Tokens already
    verified are remembered until they expire (keyed by the whole token, signature
    included), so a client reusing its token pays the HMAC check once. When an entry
    expires, the requests in flight share one lookup instead of each making its own.
    """

    def __init__(self, ttl_s: float = 1.0, max_size: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._seen: dict[UUID, tuple[float, Principal | None]] = {}
        self._tokens: dict[str, tuple[float, UUID, int]] = {}
        self.lookups: dict[UUID, asyncio.Future[Principal | None]] = {}

    def token(self, token: str) -> tuple[UUID, int] | None:
        """The user id and token version of a token verified before, until it expires."""
        hit = self._tokens.get(token)
        if hit is None or hit[0] <= time.time():
            return None
        return hit[1], hit[2]

    def remember_token(self, token: str, expires_at: float, user_id: UUID, version: int) -> None:
        if len(self._tokens) >= self.max_size:
            self._tokens.clear()
        self._tokens[token] = (expires_at, user_id, version)

    def get(self, user_id: UUID) -> tuple[bool, Principal | None]:
        hit = self._seen.get(user_id)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, user_id: UUID, principal: Principal | None) -> None:
        if len(self._seen) >= self.max_size:
            self._seen.clear()
        self._seen[user_id] = (time.monotonic() + self.ttl_s, principal)

    def forget(self, user_id: UUID) -> None:
        """Drop what is known of a user changed here, so this process sees it at once."""
        self._seen.pop(user_id, None)

    def forget_all(self) -> None:
        self._seen.clear()

"""Which API keys are valid, remembered for about a second, and when each was last touched."""

from __future__ import annotations

import time
from uuid import UUID

from ledger_core.accounts import Principal
from ledger_core.api_keys import RateLimit

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

"""Webhook rules with no I/O: the signature receivers check, when to try again, and how
many endpoints an organization may have.

Signature: `VaultCraft-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256 keyed with the endpoint's secret over `"<t>.<raw body>"`. Binding the
timestamp into the MAC lets a receiver refuse replays older than a tolerance; a receiver
must compare against the raw bytes it received, never a re-serialized body.

Retries: attempt `n` (1-based) that fails waits about `base * 2**(n-1)`, capped, with
"equal jitter" (between half and all of that), so retries stay exponential but endpoints
that failed together do not all come back at the same instant.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger_core.errors import Conflict
from ledger_core.timestamps import rfc3339, rfc3339_or_none

SIGNATURE_HEADER = "VaultCraft-Signature"
EVENT_ID_HEADER = "VaultCraft-Event-Id"
EVENT_TYPE_HEADER = "VaultCraft-Event-Type"
DELIVERY_ID_HEADER = "VaultCraft-Delivery-Id"
ATTEMPT_HEADER = "VaultCraft-Attempt"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a label in front of the random secret
DEFAULT_TOLERANCE_S = 300
MIN_ATTEMPTS = 8
MAX_WEBHOOKS = 20
"""Live endpoints per organization: each event is sent to each, so this bounds fan-out."""


class TooManyWebhooks(Conflict):
    code = "too_many_webhooks"


def check_room(live: int) -> None:
    """Refuse one more live endpoint past the limit (creations and reactivations)."""
    if live >= MAX_WEBHOOKS:
        raise TooManyWebhooks(f"an organization may have at most {MAX_WEBHOOKS} webhooks")


def new_secret() -> str:
    """A fresh signing secret (256 random bits), shown to the admin once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `VaultCraft-Signature` header value for `body` sent at `timestamp`."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_mac(secret, moment, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is recent enough.

    Several `v1=` values are accepted (any may match), so a sender can sign with an old
    and a new secret while an endpoint's secret is being rotated.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a delivery is tried."""

    max_attempts: int = 10
    base_ms: int = 10_000
    max_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if self.max_attempts < MIN_ATTEMPTS:
            raise ValueError(f"a delivery is tried at least {MIN_ATTEMPTS} times")
        if not 0 < self.base_ms <= self.max_ms:
            raise ValueError("backoff needs 0 < base_ms <= max_ms")

    def delay_ms(self, failed_attempt: int, rand: Callable[[], float] = random.random) -> int:
        """Milliseconds to wait after attempt `failed_attempt` (1-based) failed."""
        ceiling = min(self.max_ms, self.base_ms * 2 ** min(failed_attempt - 1, 40))
        return int(ceiling / 2 + rand() * ceiling / 2)

    def is_last(self, attempt: int) -> bool:
        return attempt >= self.max_attempts

    def after(
        self, attempt: int, status_code: int | None, rand: Callable[[], float] = random.random
    ) -> tuple[str, int | None]:
        """The delivery's status after attempt `attempt` got `status_code` (None: no
        answer), and the delay before the next attempt if there is one."""
        if status_code is not None and is_success(status_code):
            return "SUCCEEDED", None
        if self.is_last(attempt):
            return "FAILED", None
        return "PENDING", self.delay_ms(attempt, rand)


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


@dataclass(frozen=True)
class Webhook:
    """An endpoint an organization registered, as the API shows it (never the secret)."""

    id: UUID
    organization_id: UUID
    url: str
    events: tuple[str, ...]
    is_active: bool
    created_at: datetime

    def as_json(self, *, secret: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(self.id),
            "organization_id": str(self.organization_id),
            "url": self.url,
            "events": list(self.events),
            "is_active": self.is_active,
            "created_at": rfc3339(self.created_at),
        }
        if secret is not None:
            body["secret"] = secret
        return body


@dataclass(frozen=True)
class Attempt:
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one endpoint, with every attempt made so far."""

    id: UUID
    webhook_id: UUID
    event_id: UUID
    event_type: str
    origin: str
    status: str
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: tuple[Attempt, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """`next_attempt_at` is shown only while a retry is planned."""
        return {
            "id": str(self.id),
            "webhook_id": str(self.webhook_id),
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "origin": self.origin,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "next_attempt_at": (
                rfc3339_or_none(self.next_attempt_at) if self.status == "PENDING" else None
            ),
            "attempts": [a.as_json() for a in self.attempts],
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }

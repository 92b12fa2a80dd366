"""API keys: server-to-server credentials of an organization, limited by scopes.

A key reads `vk_<id as 32 hex digits><secret>`: the id finds the stored key with one
primary-key lookup, the secret (32 random bytes, base64url) is checked against its stored
SHA-256 in constant time. Only the hash is stored; the key itself is shown once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.errors import InsufficientScope
from ledger_core.timestamps import rfc3339, rfc3339_or_none

KEY_PREFIX = "vk_"
_ID_HEX = 32
_SECRET_BYTES = 32
_SECRET_CHARS = 43  # base64url of 32 bytes, unpadded


class Scope(StrEnum):
    TRANSFERS_READ = "transfers:read"
    TRANSFERS_WRITE = "transfers:write"
    WALLETS_READ = "wallets:read"
    WALLETS_WRITE = "wallets:write"
    WEBHOOKS_MANAGE = "webhooks:manage"
    ADMIN = "admin"


def require_scope(granted: frozenset[str] | None, needed: str) -> None:
    """Refuse a key outside its scopes; users (`granted` None) and `admin` keys pass."""
    if granted is None or needed in granted or Scope.ADMIN.value in granted:
        return
    raise InsufficientScope(f"this API key lacks the scope {needed!r}")


def new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def compose(key_id: UUID, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id.hex}{secret}"


def display_prefix(key_id: UUID) -> str:
    """What lists show to recognise a key: `vk_` and the first 8 hex digits of its id."""
    return f"{KEY_PREFIX}{key_id.hex[:8]}"


def parse(key: str) -> tuple[UUID, str] | None:
    """The id and secret of a well-formed key, else None."""
    body = key[len(KEY_PREFIX) :]
    if not key.startswith(KEY_PREFIX) or len(body) != _ID_HEX + _SECRET_CHARS:
        return None
    try:
        key_id = UUID(hex=body[:_ID_HEX])
    except ValueError:
        return None
    secret = body[_ID_HEX:]
    if not secret.isascii():
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


@dataclass(frozen=True)
class RateLimit:
    per_s: int
    burst: int


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    organization_id: UUID
    name: str
    scopes: tuple[str, ...]
    created_by: UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: RateLimit | None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def as_json(self) -> dict[str, Any]:
        """The key as lists show it: never the secret or its hash."""
        return {
            "id": str(self.id),
            "name": self.name,
            "scopes": list(self.scopes),
            "prefix": display_prefix(self.id),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339_or_none(self.expires_at),
            "last_used_at": rfc3339_or_none(self.last_used_at),
            "revoked_at": rfc3339_or_none(self.revoked_at),
            "rate_limit_per_s": None if self.rate_limit is None else self.rate_limit.per_s,
            "rate_limit_burst": None if self.rate_limit is None else self.rate_limit.burst,
        }

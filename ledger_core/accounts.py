"""Organizations and their users: the tenants of the ledger and who acts inside them.

Plain values and their public JSON shape. Storage lives in
`ledger_core.persistence.accounts.store`; password hashing and tokens live at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger_core.errors import Forbidden
from ledger_core.timestamps import rfc3339


class Role(StrEnum):
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    default_currency: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "default_currency": self.default_currency,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True)
class User:
    id: UUID
    organization_id: UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The user as clients see it: never the password hash."""
        return {
            "id": str(self.id),
            "organization_id": str(self.organization_id),
            "email": self.email,
            "full_name": self.full_name,
            "role": self.role.value,
            "is_active": self.is_active,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True)
class Principal:
    """Who is calling: an active user of one organization, with the role they hold now,
    or an API key of the organization (an admin limited by its scopes)."""

    user_id: UUID
    organization_id: UUID
    role: Role
    token_version: int = 0
    """The user's credential generation: tokens of an older one are refused."""
    key_id: UUID | None = None
    """Set when an API key calls: it acts for its organization, `user_id` is its creator."""
    scopes: frozenset[str] | None = None
    """An API key's scopes; None for a user, whom only the role limits."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def require_admin(principal: Principal) -> None:
    """Refuse a member where only an organization's admin may act."""
    if not principal.is_admin:
        raise Forbidden("only an organization admin may do this")

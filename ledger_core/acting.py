"""Who performs a use case, and from where: what every audited use case is given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from uuid import UUID

from ledger_core.accounts import Principal


@dataclass(frozen=True)
class AuditContext:
    """Where an action comes from: the request and, once known, the acting user."""

    client_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    actor_id: UUID | None = None
    organization_id: UUID | None = None
    actor_type: str = "user"
    """`user`, or `api_key` when `actor_id` is the id of the API key that acted."""

    def acting(self, *, actor_id: UUID | None, organization_id: UUID | None) -> AuditContext:
        """The same request, attributed to a user and organization learned along the way."""
        return dataclasses.replace(
            self, actor_id=actor_id, organization_id=organization_id, actor_type="user"
        )


@dataclass(frozen=True)
class Acting:
    """The acting principal and the audit context of the request it came with."""

    principal: Principal
    audit: AuditContext

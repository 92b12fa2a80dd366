"""Counterparty links, with no I/O: which organizations an organization accepts transfers from.

A link `(organization_id, counterparty_organization_id)` means "this organization accepts
transfers from that one"; it is one-directional. Without it, the organization's wallets
are invisible to the other as transfer destinations (see `ledger_core.intents`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger_core.errors import Conflict, DomainError
from ledger_core.timestamps import rfc3339


class CounterpartyExists(Conflict):
    code = "counterparty_exists"


class SelfCounterparty(DomainError):
    code = "self_counterparty"


@dataclass(frozen=True)
class Counterparty:
    organization_id: UUID
    """The organization transfers are accepted from."""
    created_by: UUID | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "organization_id": str(self.organization_id),
            "created_by": None if self.created_by is None else str(self.created_by),
            "created_at": rfc3339(self.created_at),
        }


def check_counterparty(organization_id: UUID, counterparty_id: UUID) -> None:
    """An organization never needs a link to itself: its own transfers stay inside."""
    if counterparty_id == organization_id:
        raise SelfCounterparty(
            "an organization cannot be its own counterparty", field="organization_id"
        )

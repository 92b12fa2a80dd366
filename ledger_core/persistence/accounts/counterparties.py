"""Counterparty links: the organizations an organization accepts transfers from.

A link `(organization_id, counterparty_organization_id)` means "this organization accepts
transfers from that one"; it is one-directional. Without it, the organization's wallets
are invisible to the other as transfer destinations (see `ledger_core.intents`). Adding
and removing a link writes its audit record in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.errors import Conflict, DomainError, NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.accounts.store import get_organization
from ledger_core.persistence.audit.records import AuditContext, audit_insert
from ledger_core.persistence.pages import newest_first, split_page
from ledger_core.persistence.tables import counterparties
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


def _counterparty(row: Any) -> Counterparty:
    return Counterparty(row.counterparty_organization_id, row.created_by, row.created_at)


async def add_counterparty(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, organization_id: UUID
) -> Counterparty:
    """Accept transfers from `organization_id` from now on (admin)."""
    if organization_id == principal.organization_id:
        raise SelfCounterparty(
            "an organization cannot be its own counterparty", field="organization_id"
        )
    if await get_organization(conn, organization_id) is None:
        raise NotFound("no such organization", field="organization_id")
    row = (
        await conn.execute(
            insert(counterparties)
            .values(
                organization_id=principal.organization_id,
                counterparty_organization_id=organization_id,
                created_by=principal.user_id,
            )
            .on_conflict_do_nothing()
            .returning(*counterparties.c)
        )
    ).one_or_none()
    if row is None:
        raise CounterpartyExists(
            "transfers from this organization are already accepted", field="organization_id"
        )
    await conn.execute(
        audit_insert(
            audit,
            "counterparty.added",
            resource_type="organization",
            resource_id=organization_id,
            details={"counterparty_organization_id": str(organization_id)},
        )
    )
    return _counterparty(row)


async def remove_counterparty(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, organization_id: UUID
) -> None:
    """Stop accepting new transfers from `organization_id` (admin); 404 if not linked.

    Transfers already accepted (PENDING) still post, and positions already built settle.
    """
    removed = (
        await conn.execute(
            counterparties.delete()
            .where(
                counterparties.c.organization_id == principal.organization_id,
                counterparties.c.counterparty_organization_id == organization_id,
            )
            .returning(counterparties.c.counterparty_organization_id)
        )
    ).one_or_none()
    if removed is None:
        raise NotFound("this organization is not a counterparty", field="organization_id")
    await conn.execute(
        audit_insert(
            audit,
            "counterparty.removed",
            resource_type="organization",
            resource_id=organization_id,
            details={"counterparty_organization_id": str(organization_id)},
        )
    )


async def read_counterparty(
    conn: AsyncConnection, principal: Principal, organization_id: UUID
) -> Counterparty:
    row = (
        await conn.execute(
            select(counterparties).where(
                counterparties.c.organization_id == principal.organization_id,
                counterparties.c.counterparty_organization_id == organization_id,
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("this organization is not a counterparty")
    return _counterparty(row)


async def list_counterparties(
    conn: AsyncConnection, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Counterparty], Keyset | None]:
    """The organizations the caller's organization accepts transfers from, newest first."""
    stmt = select(counterparties).where(
        counterparties.c.organization_id == principal.organization_id
    )
    stmt = newest_first(
        stmt,
        counterparties.c.created_at,
        counterparties.c.counterparty_organization_id,
        after,
        limit,
    )
    rows = (await conn.execute(stmt)).all()
    page, next_key = split_page(
        rows, limit, lambda r: Keyset(r.created_at, r.counterparty_organization_id)
    )
    return [_counterparty(r) for r in page], next_key

"""Reading settlements: an organization sees those where it pays or is paid, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.rows import one_or_none
from ledger_core.persistence.settlement.settle import settlement_of
from ledger_core.persistence.tables import settlements
from ledger_core.settlement import Settlement


@dataclass(frozen=True)
class SettlementFilter:
    currency: str | None = None
    payer_organization_id: UUID | None = None
    payee_organization_id: UUID | None = None


def _visible(organization_id: UUID) -> Select[Any]:
    return select(settlements).where(
        or_(
            settlements.c.payer_organization_id == organization_id,
            settlements.c.payee_organization_id == organization_id,
        )
    )


async def list_settlements(
    conn: AsyncConnection,
    principal: Principal,
    f: SettlementFilter,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Settlement], Keyset | None]:
    """Settlements of the caller's organization (admin), newest first."""
    stmt = _visible(principal.organization_id)
    if f.currency is not None:
        stmt = stmt.where(settlements.c.currency == f.currency)
    if f.payer_organization_id is not None:
        stmt = stmt.where(settlements.c.payer_organization_id == f.payer_organization_id)
    if f.payee_organization_id is not None:
        stmt = stmt.where(settlements.c.payee_organization_id == f.payee_organization_id)
    stmt = newest_first(stmt, settlements.c.created_at, settlements.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [settlement_of(r) for r in page], next_key


async def get_settlement(
    conn: AsyncConnection, principal: Principal, settlement_id: UUID
) -> Settlement | None:
    """One settlement the caller's organization is party to; None for any other."""
    stmt = _visible(principal.organization_id).where(settlements.c.id == settlement_id)
    return await one_or_none(conn, stmt, settlement_of)

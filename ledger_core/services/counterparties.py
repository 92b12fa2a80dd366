"""Counterparties: the organizations whose transfers an organization accepts (admins only)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.keyset import Keyset
from ledger_core.persistence.accounts import counterparties as store
from ledger_core.persistence.accounts.counterparties import Counterparty


async def add_counterparty(
    engine: AsyncEngine, acting: Acting, organization_id: UUID
) -> Counterparty:
    """Accept transfers from `organization_id` from now on."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.add_counterparty(conn, acting.principal, acting.audit, organization_id)


async def remove_counterparty(engine: AsyncEngine, acting: Acting, organization_id: UUID) -> None:
    """Stop accepting new transfers from `organization_id`; 404 if not linked."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        await store.remove_counterparty(conn, acting.principal, acting.audit, organization_id)


async def read_counterparty(
    engine: AsyncEngine, principal: Principal, organization_id: UUID
) -> Counterparty:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.read_counterparty(conn, principal, organization_id)


async def counterparties_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Counterparty], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_counterparties(conn, principal, after=after, limit=limit)

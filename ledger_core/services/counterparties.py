"""Counterparties: the organizations whose transfers an organization accepts (admins only).

Adding and removing a link writes its audit record (`counterparty.added`,
`counterparty.removed`) in the same unit of work.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.counterparties import Counterparty, CounterpartyExists, check_counterparty
from ledger_core.errors import NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.accounts import counterparties as store
from ledger_core.persistence.accounts.store import get_organization
from ledger_core.persistence.audit.records import audit_insert


async def add_counterparty(
    engine: AsyncEngine, acting: Acting, organization_id: UUID
) -> Counterparty:
    """Accept transfers from `organization_id` from now on."""
    who = acting.principal
    require_admin(who)
    check_counterparty(who.organization_id, organization_id)
    async with engine.begin() as conn:
        if await get_organization(conn, organization_id) is None:
            raise NotFound("no such organization", field="organization_id")
        added = await store.insert_counterparty(
            conn, who.organization_id, organization_id, who.user_id
        )
        if added is None:
            raise CounterpartyExists(
                "transfers from this organization are already accepted", field="organization_id"
            )
        await _audit(conn, acting, "counterparty.added", organization_id)
    return added


async def remove_counterparty(engine: AsyncEngine, acting: Acting, organization_id: UUID) -> None:
    """Stop accepting new transfers from `organization_id`; 404 if not linked.

    Transfers already accepted (PENDING) still post, and positions already built settle.
    """
    who = acting.principal
    require_admin(who)
    async with engine.begin() as conn:
        if not await store.delete_counterparty(conn, who.organization_id, organization_id):
            raise NotFound("this organization is not a counterparty", field="organization_id")
        await _audit(conn, acting, "counterparty.removed", organization_id)


async def read_counterparty(
    engine: AsyncEngine, principal: Principal, organization_id: UUID
) -> Counterparty:
    require_admin(principal)
    async with engine.connect() as conn:
        found = await store.find_counterparty(conn, principal.organization_id, organization_id)
    if found is None:
        raise NotFound("this organization is not a counterparty")
    return found


async def counterparties_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Counterparty], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_counterparties(
            conn, principal.organization_id, after=after, limit=limit
        )


async def _audit(conn: AsyncConnection, acting: Acting, action: str, organization_id: UUID) -> None:
    await conn.execute(
        audit_insert(
            acting.audit,
            action,
            resource_type="organization",
            resource_id=organization_id,
            details={"counterparty_organization_id": str(organization_id)},
        )
    )

"""Settlement: net an organization's cross-organization positions now, and read settlements."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.errors import NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.settlement.reads import (
    SettlementFilter,
    get_settlement,
    list_settlements,
)
from ledger_core.persistence.settlement.settle import SkippedPair, run_settlement
from ledger_core.settlement import Settlement


async def settle_now(engine: AsyncEngine, acting: Acting) -> list[Settlement]:
    """Settle, per counterparty and currency, the pairs the caller's organization is in.

    The request is audited first, in its own transaction; each pair then settles in one
    short transaction of its own, safe to race with the scheduled run.
    """
    who = acting.principal
    require_admin(who)
    async with engine.begin() as conn:
        await conn.execute(
            audit_insert(
                acting.audit,
                "settlement.run_requested",
                resource_type="organization",
                resource_id=who.organization_id,
            )
        )
    async with engine.connect() as conn:
        return await conn.run_sync(run_settlement, who.organization_id)


def settle_pairs(
    engine: Engine,
    organization_id: UUID | None = None,
    skipped: list[SkippedPair] | None = None,
) -> list[Settlement]:
    """Settle every pair (or every pair of `organization_id`), each in its own transaction.

    What the scheduled job and `vaultcraft settle` run; a duplicate or concurrent run only
    finds less (or nothing) to do. Pairs that could not be settled are added to `skipped`.
    """
    with engine.connect() as conn:
        return run_settlement(conn, organization_id, skipped)


async def settlements_page(
    engine: AsyncEngine,
    principal: Principal,
    f: SettlementFilter,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Settlement], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await list_settlements(conn, principal, f, after=after, limit=limit)


async def read_settlement(
    engine: AsyncEngine, principal: Principal, settlement_id: UUID
) -> Settlement:
    require_admin(principal)
    async with engine.connect() as conn:
        found = await get_settlement(conn, principal, settlement_id)
    if found is None:
        raise NotFound("no such settlement")
    return found


__all__ = ["SettlementFilter", "read_settlement", "settle_now", "settle_pairs", "settlements_page"]

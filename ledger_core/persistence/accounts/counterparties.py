"""Storage of counterparty links (`ledger_core.counterparties`): SQL only.

The use cases in `ledger_core.services.counterparties` decide who may change a link and
write the audit record in the same transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.counterparties import Counterparty
from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import newest_first, split_page
from ledger_core.persistence.rows import one_or_none
from ledger_core.persistence.tables import counterparties


def _counterparty(row: Any) -> Counterparty:
    return Counterparty(row.counterparty_organization_id, row.created_by, row.created_at)


def _link(organization_id: UUID, counterparty_id: UUID) -> tuple[Any, ...]:
    return (
        counterparties.c.organization_id == organization_id,
        counterparties.c.counterparty_organization_id == counterparty_id,
    )


async def insert_counterparty(
    conn: AsyncConnection, organization_id: UUID, counterparty_id: UUID, created_by: UUID | None
) -> Counterparty | None:
    """Link `counterparty_id` to the organization; None when it was already linked."""
    stmt = (
        insert(counterparties)
        .values(
            organization_id=organization_id,
            counterparty_organization_id=counterparty_id,
            created_by=created_by,
        )
        .on_conflict_do_nothing()
    )
    return await one_or_none(conn, stmt.returning(*counterparties.c), _counterparty)


async def delete_counterparty(
    conn: AsyncConnection, organization_id: UUID, counterparty_id: UUID
) -> bool:
    """Remove a link; False when there was none."""
    removed = await conn.scalar(
        counterparties.delete()
        .where(*_link(organization_id, counterparty_id))
        .returning(counterparties.c.counterparty_organization_id)
    )
    return removed is not None


async def find_counterparty(
    conn: AsyncConnection, organization_id: UUID, counterparty_id: UUID
) -> Counterparty | None:
    stmt = select(counterparties).where(*_link(organization_id, counterparty_id))
    return await one_or_none(conn, stmt, _counterparty)


async def list_counterparties(
    conn: AsyncConnection, organization_id: UUID, *, after: Keyset | None, limit: int
) -> tuple[list[Counterparty], Keyset | None]:
    """The organizations the organization accepts transfers from, newest first."""
    stmt = select(counterparties).where(counterparties.c.organization_id == organization_id)
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

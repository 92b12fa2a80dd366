"""Reading the organization's events (the outbox) as subscribers receive them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.keyset import Keyset
from ledger_core.persistence.events.outbox import event_envelope
from ledger_core.persistence.pages import read_page
from ledger_core.persistence.tables import outbox


@dataclass(frozen=True)
class EventFilters:
    type: str | None = None
    resource_id: UUID | None = None
    """The transfer, wallet, settlement or run the event is about (its `data.id`)."""


async def list_events(
    conn: AsyncConnection,
    principal: Principal,
    filters: EventFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """Newest first by outbox id, served from the `(organization_id, id)` index."""
    stmt = select(
        outbox.c.id,
        outbox.c.event_id,
        outbox.c.type,
        outbox.c.created_at,
        outbox.c.organization_id,
        outbox.c.data,
    ).where(outbox.c.organization_id == principal.organization_id)
    if filters.type is not None:
        stmt = stmt.where(outbox.c.type == filters.type)
    if filters.resource_id is not None:
        stmt = stmt.where(outbox.c.data["id"].astext == str(filters.resource_id))
    if after is not None:
        stmt = stmt.where(outbox.c.id < after.id)
    page, next_key = await read_page(
        conn, stmt.order_by(outbox.c.id.desc()).limit(limit + 1), limit
    )
    events = [
        event_envelope(r.event_id, r.type, r.created_at, r.organization_id, r.data) for r in page
    ]
    return events, next_key

"""Storage of webhook endpoints and what the API shows of their deliveries (async).

SQL only: the use cases in `ledger_core.services.webhooks` decide and audit. Every
lookup is scoped by organization, so another tenant's webhook or event is simply not
found (None). The signing secret is stored (it is needed to sign) and read only by
`insert_webhook`'s caller and `webhook_with_secret`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.keyset import Keyset
from ledger_core.persistence.events.outbox_relay import OUTBOX_CHANNEL
from ledger_core.persistence.pages import newest_first, newest_page, read_page
from ledger_core.persistence.rows import exactly_one, one_or_none, owned
from ledger_core.persistence.tables import outbox, webhook_attempts, webhook_deliveries, webhooks
from ledger_core.webhooks import Attempt, Delivery, Webhook

_REDELIVER = text("""
    INSERT INTO webhook_deliveries (webhook_id, event_id, organization_id, origin, next_attempt_at)
    SELECT w.id, :event_id, w.organization_id, 'REDELIVERY', now()
    FROM webhooks AS w
    WHERE w.organization_id = :organization_id AND w.is_active AND w.deleted_at IS NULL
      AND w.events ? :event_type
    ORDER BY w.created_at
    RETURNING id
""")

_LIVE = (webhooks.c.is_active.is_(True), webhooks.c.deleted_at.is_(None))


def _webhook(row: Row[Any]) -> Webhook:
    return Webhook(
        id=row.id,
        organization_id=row.organization_id,
        url=row.url,
        events=tuple(row.events),
        is_active=row.is_active,
        created_at=row.created_at,
    )


def _mine(organization_id: UUID, webhook_id: UUID) -> tuple[Any, ...]:
    """The conditions of one endpoint of the organization that is not deleted."""
    return (*owned(webhooks, organization_id, webhook_id), webhooks.c.deleted_at.is_(None))


async def count_live_locked(conn: AsyncConnection, organization_id: UUID) -> int:
    """The organization's live endpoints, counted under its webhook lock (held to commit),
    so that a limit checked on the count holds under concurrent requests."""
    lock = func.pg_advisory_xact_lock(func.hashtext(f"webhooks:{organization_id}"))
    await conn.execute(select(lock))
    live = await conn.scalar(
        select(func.count())
        .select_from(webhooks)
        .where(webhooks.c.organization_id == organization_id, *_LIVE)
    )
    return live or 0


async def insert_webhook(
    conn: AsyncConnection,
    *,
    organization_id: UUID,
    created_by: UUID | None,
    url: str,
    events: list[str],
    secret: str,
) -> Webhook:
    insert = webhooks.insert().values(
        organization_id=organization_id,
        url=url,
        events=events,
        secret=secret,
        created_by=created_by,
    )
    return await exactly_one(conn, insert.returning(*webhooks.c), _webhook)


async def find_webhook(
    conn: AsyncConnection, organization_id: UUID, webhook_id: UUID, *, for_update: bool = False
) -> Webhook | None:
    """One endpoint of the organization (not deleted), locked with `for_update`."""
    stmt = select(webhooks).where(*_mine(organization_id, webhook_id))
    if for_update:
        stmt = stmt.with_for_update()
    return await one_or_none(conn, stmt, _webhook)


async def webhook_with_secret(
    conn: AsyncConnection, organization_id: UUID, webhook_id: UUID
) -> tuple[Webhook, str] | None:
    """An endpoint and its signing secret, to sign something for it now."""
    stmt = select(webhooks).where(*_mine(organization_id, webhook_id))
    return await one_or_none(conn, stmt, lambda row: (_webhook(row), str(row.secret)))


async def update_webhook(
    conn: AsyncConnection, organization_id: UUID, webhook_id: UUID, changes: dict[str, Any]
) -> Webhook:
    """Apply `changes` (url, events, is_active) to an endpoint the caller has locked."""
    stmt = update(webhooks).where(*_mine(organization_id, webhook_id)).values(**changes)
    return await exactly_one(conn, stmt.returning(*webhooks.c), _webhook)


async def list_webhooks(
    conn: AsyncConnection, organization_id: UUID, *, after: Keyset | None, limit: int
) -> tuple[list[Webhook], Keyset | None]:
    stmt: Select[Any] = select(webhooks).where(
        webhooks.c.organization_id == organization_id, webhooks.c.deleted_at.is_(None)
    )
    return await newest_page(conn, stmt, webhooks, _webhook, after=after, limit=limit)


async def delete_webhook(
    conn: AsyncConnection, organization_id: UUID, webhook_id: UUID
) -> str | None:
    """Mark an endpoint deleted and inactive; its URL, or None if there was no such endpoint.

    Its pending deliveries then end FAILED (the delivery worker finds it inactive)."""
    url = await conn.scalar(
        update(webhooks)
        .where(*_mine(organization_id, webhook_id))
        .values(is_active=False, deleted_at=func.now())
        .returning(webhooks.c.url)
    )
    return None if url is None else str(url)


async def webhook_ever_existed(
    conn: AsyncConnection, organization_id: UUID, webhook_id: UUID
) -> bool:
    """Whether the organization has or had this endpoint (a deleted one's history stays)."""
    found = await conn.scalar(
        select(webhooks.c.id).where(*owned(webhooks, organization_id, webhook_id))
    )
    return found is not None


@dataclass(frozen=True)
class DeliveryFilters:
    status: str | None = None
    event_id: UUID | None = None


_DELIVERY = select(webhook_deliveries, outbox.c.type.label("event_type")).join(
    outbox, outbox.c.event_id == webhook_deliveries.c.event_id
)


def _delivery(row: Row[Any], attempts: list[Attempt]) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        origin=row.origin,
        status=row.status,
        attempt_count=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=tuple(attempts),
    )


async def _attempts(conn: AsyncConnection, delivery_ids: list[UUID]) -> dict[UUID, list[Attempt]]:
    found: dict[UUID, list[Attempt]] = defaultdict(list)
    if not delivery_ids:
        return found
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
        .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.id)
    )
    for r in rows:
        found[r.delivery_id].append(
            Attempt(r.attempt, r.status_code, r.error, r.duration_ms, r.created_at)
        )
    return found


async def list_deliveries(
    conn: AsyncConnection,
    webhook_id: UUID,
    filters: DeliveryFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Delivery], Keyset | None]:
    """A webhook's deliveries, newest first, each with its attempts; the caller has
    checked the webhook is the organization's."""
    stmt = _DELIVERY.where(webhook_deliveries.c.webhook_id == webhook_id)
    if filters.status is not None:
        stmt = stmt.where(webhook_deliveries.c.status == filters.status)
    if filters.event_id is not None:
        stmt = stmt.where(webhook_deliveries.c.event_id == filters.event_id)
    stmt = newest_first(
        stmt, webhook_deliveries.c.created_at, webhook_deliveries.c.id, after, limit
    )
    page, next_key = await read_page(conn, stmt, limit)
    attempts = await _attempts(conn, [r.id for r in page])
    return [_delivery(r, attempts[r.id]) for r in page], next_key


async def event_type_of(conn: AsyncConnection, organization_id: UUID, event_id: UUID) -> str | None:
    """The type of one of the organization's events, or None if it has no such event."""
    found = await conn.scalar(
        select(outbox.c.type).where(
            outbox.c.event_id == event_id, outbox.c.organization_id == organization_id
        )
    )
    return None if found is None else str(found)


async def insert_redeliveries(
    conn: AsyncConnection, organization_id: UUID, event_id: UUID, event_type: str
) -> list[UUID]:
    """Fresh deliveries of an event to every active endpoint subscribed to its type, and a
    wake-up for the relay, which sends them (at commit)."""
    created = await conn.execute(
        _REDELIVER,
        {"event_id": event_id, "organization_id": organization_id, "event_type": event_type},
    )
    ids = [r.id for r in created]
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
    return ids


async def deliveries_by_id(conn: AsyncConnection, ids: Sequence[UUID]) -> list[Delivery]:
    """Deliveries (without their attempts), oldest first."""
    if not ids:
        return []
    rows = (
        await conn.execute(
            _DELIVERY.where(webhook_deliveries.c.id.in_(ids)).order_by(
                webhook_deliveries.c.created_at, webhook_deliveries.c.id
            )
        )
    ).all()
    return [_delivery(r, []) for r in rows]

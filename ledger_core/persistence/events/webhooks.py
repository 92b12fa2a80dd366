"""Storage of webhook endpoints and what the API shows of their deliveries (async).

Every change is audited in the same transaction (`webhook.created`, `webhook.deleted`,
`event.redelivered`). Lookups are scoped by organization, so another tenant's webhook or
event is simply not found. The signing secret is stored (it is needed to sign) and
returned only by `create_webhook`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.errors import Conflict, NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.records import AuditContext, audit_insert
from ledger_core.persistence.events.outbox_relay import OUTBOX_CHANNEL
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.tables import outbox, webhook_attempts, webhook_deliveries, webhooks
from ledger_core.webhooks import Attempt, Delivery, Webhook, new_secret

MAX_WEBHOOKS = 20
"""Live endpoints per organization: each event is sent to each, so this bounds fan-out."""


class TooManyWebhooks(Conflict):
    code = "too_many_webhooks"


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


async def create_webhook(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    *,
    url: str,
    events: list[str],
) -> tuple[Webhook, str]:
    """Register an endpoint (admin); returns it with its new secret, shown only now.

    The URL must already have passed `ledger_core.ssrf` checks.
    """
    org_id = principal.organization_id
    await _check_room(conn, org_id)
    secret = new_secret()
    row = (
        await conn.execute(
            webhooks.insert()
            .values(
                organization_id=org_id,
                url=url,
                events=events,
                secret=secret,
                created_by=principal.user_id,
            )
            .returning(*webhooks.c)
        )
    ).one()
    webhook = _webhook(row)
    await conn.execute(
        audit_insert(
            audit,
            "webhook.created",
            resource_type="webhook",
            resource_id=webhook.id,
            details={"url": url, "events": events},
        )
    )
    return webhook, secret


async def _check_room(conn: AsyncConnection, org_id: UUID) -> None:
    """Refuse one more live endpoint past the limit (creations and reactivations)."""
    # Serialize per organization so the limit holds under concurrent requests.
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"webhooks:{org_id}"))))
    live = await conn.scalar(
        select(func.count())
        .select_from(webhooks)
        .where(webhooks.c.organization_id == org_id, *_LIVE)
    )
    if (live or 0) >= MAX_WEBHOOKS:
        raise TooManyWebhooks(f"an organization may have at most {MAX_WEBHOOKS} webhooks")


async def update_webhook(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    webhook_id: UUID,
    changes: dict[str, Any],
) -> Webhook:
    """Change an endpoint's url, events or is_active (admin); audited as `webhook.updated`."""
    mine = (
        webhooks.c.id == webhook_id,
        webhooks.c.organization_id == principal.organization_id,
        webhooks.c.deleted_at.is_(None),
    )
    current = (await conn.execute(select(webhooks).where(*mine).with_for_update())).one_or_none()
    if current is None:
        raise NotFound("no such webhook")
    if changes.get("is_active") and not current.is_active:
        await _check_room(conn, principal.organization_id)
    if not changes:
        return _webhook(current)
    row = (
        await conn.execute(update(webhooks).where(*mine).values(**changes).returning(*webhooks.c))
    ).one()
    await conn.execute(
        audit_insert(
            audit,
            "webhook.updated",
            resource_type="webhook",
            resource_id=webhook_id,
            details=changes,
        )
    )
    return _webhook(row)


async def read_webhook(conn: AsyncConnection, principal: Principal, webhook_id: UUID) -> Webhook:
    row = (
        await conn.execute(
            select(webhooks).where(
                webhooks.c.id == webhook_id,
                webhooks.c.organization_id == principal.organization_id,
                webhooks.c.deleted_at.is_(None),
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such webhook")
    return _webhook(row)


async def webhook_for_test(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, webhook_id: UUID
) -> tuple[Webhook, str]:
    """The endpoint and its signing secret, to send it a test event; audited."""
    row = (
        await conn.execute(
            select(webhooks).where(
                webhooks.c.id == webhook_id,
                webhooks.c.organization_id == principal.organization_id,
                webhooks.c.deleted_at.is_(None),
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such webhook")
    await conn.execute(
        audit_insert(audit, "webhook.tested", resource_type="webhook", resource_id=webhook_id)
    )
    return _webhook(row), str(row.secret)


async def list_webhooks(
    conn: AsyncConnection, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Webhook], Keyset | None]:
    stmt: Select[Any] = select(webhooks).where(
        webhooks.c.organization_id == principal.organization_id, webhooks.c.deleted_at.is_(None)
    )
    stmt = newest_first(stmt, webhooks.c.created_at, webhooks.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [_webhook(r) for r in page], next_key


async def delete_webhook(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, webhook_id: UUID
) -> None:
    """Stop sending to an endpoint (admin). Its pending deliveries end FAILED."""
    row = (
        await conn.execute(
            update(webhooks)
            .where(
                webhooks.c.id == webhook_id,
                webhooks.c.organization_id == principal.organization_id,
                webhooks.c.deleted_at.is_(None),
            )
            .values(is_active=False, deleted_at=func.now())
            .returning(webhooks.c.url)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such webhook")
    await conn.execute(
        audit_insert(
            audit,
            "webhook.deleted",
            resource_type="webhook",
            resource_id=webhook_id,
            details={"url": row.url},
        )
    )


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
    principal: Principal,
    webhook_id: UUID,
    filters: DeliveryFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Delivery], Keyset | None]:
    """A webhook's deliveries, newest first, each with its attempts (admin).

    A deleted webhook's history stays readable.
    """
    owner = await conn.scalar(
        select(webhooks.c.id).where(
            webhooks.c.id == webhook_id, webhooks.c.organization_id == principal.organization_id
        )
    )
    if owner is None:
        raise NotFound("no such webhook")
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


async def redeliver_event(
    conn: AsyncConnection, principal: Principal, audit: AuditContext, event_id: UUID
) -> list[Delivery]:
    """Send an event again to every endpoint now subscribed to it (admin).

    Creates fresh deliveries (with fresh attempt counts) and wakes the relay, which sends
    them; the event keeps its id, so receivers that already have it can ignore it.
    """
    event = (
        await conn.execute(
            select(outbox.c.event_id, outbox.c.type).where(
                outbox.c.event_id == event_id,
                outbox.c.organization_id == principal.organization_id,
            )
        )
    ).one_or_none()
    if event is None:
        raise NotFound("no such event")
    created = await conn.execute(
        _REDELIVER,
        {
            "event_id": event_id,
            "organization_id": principal.organization_id,
            "event_type": event.type,
        },
    )
    ids = [r.id for r in created]
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
    await conn.execute(
        audit_insert(
            audit,
            "event.redelivered",
            resource_type="event",
            resource_id=event_id,
            details={"event_type": event.type, "deliveries": [str(i) for i in ids]},
        )
    )
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

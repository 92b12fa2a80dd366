"""Webhooks: register, change and remove endpoints, read their deliveries, redeliver an event.

All admin only. The URL is checked (`ledger_core.ssrf`) before it is registered. Every
change writes its audit record (`webhook.created`, `webhook.updated`, `webhook.tested`,
`webhook.deleted`, `event.redelivered`) in the unit of work that makes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.errors import NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.events import webhooks as store
from ledger_core.persistence.events.event_reads import EventFilters, list_events
from ledger_core.persistence.events.webhooks import DeliveryFilters
from ledger_core.webhooks import Delivery, Webhook, check_room, new_secret

T = TypeVar("T")


async def create_webhook(
    engine: AsyncEngine,
    acting: Acting,
    *,
    url: str,
    events: list[str],
    check_url: Callable[[str], Awaitable[object]],
) -> tuple[Webhook, str]:
    """Register an endpoint; returns it with its new secret, shown only now.

    `check_url` resolves the URL's host and refuses private targets; it runs only for an
    admin, so a member learns nothing about any URL.
    """
    who = acting.principal
    require_admin(who)
    await check_url(url)
    secret = new_secret()
    async with engine.begin() as conn:
        check_room(await store.count_live_locked(conn, who.organization_id))
        webhook = await store.insert_webhook(
            conn,
            organization_id=who.organization_id,
            created_by=who.user_id,
            url=url,
            events=events,
            secret=secret,
        )
        await _audit(conn, acting, "webhook.created", webhook.id, {"url": url, "events": events})
    return webhook, secret


async def read_webhook(engine: AsyncEngine, principal: Principal, webhook_id: UUID) -> Webhook:
    require_admin(principal)
    async with engine.connect() as conn:
        return _found(await store.find_webhook(conn, principal.organization_id, webhook_id))


async def webhook_for_test(
    engine: AsyncEngine, acting: Acting, webhook_id: UUID
) -> tuple[Webhook, str]:
    """An endpoint and its secret, to send it a signed test event now (admin)."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        found = await store.webhook_with_secret(conn, acting.principal.organization_id, webhook_id)
        webhook, secret = _found(found)
        await _audit(conn, acting, "webhook.tested", webhook_id)
    return webhook, secret


async def update_webhook(
    engine: AsyncEngine,
    acting: Acting,
    webhook_id: UUID,
    changes: dict[str, Any],
    check_url: Callable[[str], Awaitable[object]],
) -> Webhook:
    """Change an endpoint's `url`, `events` or `is_active`; a new URL is checked first.

    Reactivating an endpoint counts against the organization's limit, like creating one.
    """
    org_id = acting.principal.organization_id
    require_admin(acting.principal)
    if "url" in changes:
        await check_url(changes["url"])
    async with engine.begin() as conn:
        current = _found(await store.find_webhook(conn, org_id, webhook_id, for_update=True))
        if changes.get("is_active") and not current.is_active:
            check_room(await store.count_live_locked(conn, org_id))
        if not changes:
            return current
        webhook = await store.update_webhook(conn, org_id, webhook_id, changes)
        await _audit(conn, acting, "webhook.updated", webhook_id, changes)
    return webhook


async def webhooks_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Webhook], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_webhooks(conn, principal.organization_id, after=after, limit=limit)


async def delete_webhook(engine: AsyncEngine, acting: Acting, webhook_id: UUID) -> None:
    """Stop sending to an endpoint. Its pending deliveries end FAILED."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        url = await store.delete_webhook(conn, acting.principal.organization_id, webhook_id)
        await _audit(conn, acting, "webhook.deleted", webhook_id, {"url": _found(url)})


async def deliveries_page(
    engine: AsyncEngine,
    principal: Principal,
    webhook_id: UUID,
    filters: DeliveryFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Delivery], Keyset | None]:
    """A webhook's deliveries, newest first, with their attempts; a deleted webhook's
    history stays readable."""
    require_admin(principal)
    async with engine.connect() as conn:
        if not await store.webhook_ever_existed(conn, principal.organization_id, webhook_id):
            raise NotFound("no such webhook")
        return await store.list_deliveries(conn, webhook_id, filters, after=after, limit=limit)


async def events_page(
    engine: AsyncEngine,
    principal: Principal,
    filters: EventFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Keyset | None]:
    """The organization's events, newest first, as webhooks deliver them (admin)."""
    require_admin(principal)
    async with engine.connect() as conn:
        return await list_events(conn, principal, filters, after=after, limit=limit)


async def redeliver_event(engine: AsyncEngine, acting: Acting, event_id: UUID) -> list[Delivery]:
    """Fresh deliveries (with fresh attempt counts) of an event to every active endpoint
    subscribed to its type; the event keeps its id, so receivers that already have it
    can ignore it."""
    org_id = acting.principal.organization_id
    require_admin(acting.principal)
    async with engine.begin() as conn:
        event_type = await store.event_type_of(conn, org_id, event_id)
        if event_type is None:
            raise NotFound("no such event")
        ids = await store.insert_redeliveries(conn, org_id, event_id, event_type)
        details = {"event_type": event_type, "deliveries": [str(i) for i in ids]}
        await conn.execute(
            audit_insert(
                acting.audit,
                "event.redelivered",
                resource_type="event",
                resource_id=event_id,
                details=details,
            )
        )
        return await store.deliveries_by_id(conn, ids)


def _found(value: T | None) -> T:
    if value is None:
        raise NotFound("no such webhook")
    return value


async def _audit(
    conn: AsyncConnection,
    acting: Acting,
    action: str,
    webhook_id: UUID,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        audit_insert(
            acting.audit, action, resource_type="webhook", resource_id=webhook_id, details=details
        )
    )


__all__ = [
    "DeliveryFilters",
    "EventFilters",
    "create_webhook",
    "delete_webhook",
    "deliveries_page",
    "events_page",
    "read_webhook",
    "redeliver_event",
    "update_webhook",
    "webhook_for_test",
    "webhooks_page",
]

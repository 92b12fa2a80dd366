"""Webhooks: register and remove endpoints, read their deliveries, redeliver an event.

All admin only. The URL is checked (`ledger_core.ssrf`) before it is registered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.keyset import Keyset
from ledger_core.persistence.events import webhooks as store
from ledger_core.persistence.events.event_reads import EventFilters, list_events
from ledger_core.persistence.events.webhooks import DeliveryFilters
from ledger_core.webhooks import Delivery, Webhook


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
    require_admin(acting.principal)
    await check_url(url)
    async with engine.begin() as conn:
        return await store.create_webhook(
            conn, acting.principal, acting.audit, url=url, events=events
        )


async def read_webhook(engine: AsyncEngine, principal: Principal, webhook_id: UUID) -> Webhook:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.read_webhook(conn, principal, webhook_id)


async def webhook_for_test(
    engine: AsyncEngine, acting: Acting, webhook_id: UUID
) -> tuple[Webhook, str]:
    """An endpoint and its secret, to send it a signed test event now (admin)."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.webhook_for_test(conn, acting.principal, acting.audit, webhook_id)


async def update_webhook(
    engine: AsyncEngine,
    acting: Acting,
    webhook_id: UUID,
    changes: dict[str, Any],
    check_url: Callable[[str], Awaitable[object]],
) -> Webhook:
    """Change an endpoint's `url`, `events` or `is_active`; a new URL is checked first."""
    require_admin(acting.principal)
    if "url" in changes:
        await check_url(changes["url"])
    async with engine.begin() as conn:
        return await store.update_webhook(conn, acting.principal, acting.audit, webhook_id, changes)


async def webhooks_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[Webhook], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_webhooks(conn, principal, after=after, limit=limit)


async def delete_webhook(engine: AsyncEngine, acting: Acting, webhook_id: UUID) -> None:
    require_admin(acting.principal)
    async with engine.begin() as conn:
        await store.delete_webhook(conn, acting.principal, acting.audit, webhook_id)


async def deliveries_page(
    engine: AsyncEngine,
    principal: Principal,
    webhook_id: UUID,
    filters: DeliveryFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Delivery], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_deliveries(
            conn, principal, webhook_id, filters, after=after, limit=limit
        )


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
    """Fresh deliveries of an event to every active endpoint subscribed to its type."""
    require_admin(acting.principal)
    async with engine.begin() as conn:
        return await store.redeliver_event(conn, acting.principal, acting.audit, event_id)


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

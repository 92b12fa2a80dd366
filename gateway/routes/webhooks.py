"""Webhooks: register and remove endpoints, read their deliveries, redeliver an event.

All admin only. A URL is checked when it is registered (form, then every address its
host resolves to, see `ledger_core.ssrf`) and again by the worker before each delivery.
"""

from __future__ import annotations

import asyncio
import socket
from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import PageQuery, page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response
from gateway.schemas.common import Page
from gateway.schemas.webhooks import (
    CreateWebhook,
    DeliveryOut,
    EventOut,
    ListDeliveries,
    ListEvents,
    RedeliveryOut,
    UpdateWebhook,
    WebhookCreatedOut,
    WebhookOut,
    WebhookTestOut,
)
from gateway.state import ENGINE, SETTINGS
from gateway.webhook_ping import ping
from ledger_core.services import webhooks
from ledger_core.services.webhooks import DeliveryFilters, EventFilters
from ledger_core.ssrf import WebhookTarget, WebhookUrlNotAllowed, check_addresses, host_and_port

routes = RouteTable(tag="Webhooks", read_scope="webhooks:manage", write_scope="webhooks:manage")

RESOLVE_TIMEOUT_S = 5.0


async def checked_target(url: str, *, allow_private: bool) -> WebhookTarget:
    """Resolve the URL's host without blocking the event loop, then check every address."""
    host, port = host_and_port(url, allow_private=allow_private)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise WebhookUrlNotAllowed(f"{host} does not resolve: {exc}", field="url") from None
    return check_addresses(url, [str(i[4][0]) for i in infos], allow_private=allow_private)


@routes.post(
    "/webhooks",
    body=CreateWebhook,
    response=WebhookCreatedOut,
    status=201,
    errors=(403, 409),
    created_path="/webhooks/{webhook_id}",
)
async def register_webhook(request: web.Request, body: CreateWebhook) -> web.Response:
    """Register a webhook endpoint (admin)

    The answer carries the endpoint's signing `secret`, shown only here. The URL must be
    `https` and resolve only to public addresses (`422 webhook_url_not_allowed`), unless
    the operator allows private targets. At most 20 endpoints per organization
    (`409 too_many_webhooks`). Audited as `webhook.created`.
    """
    allow_private = request.app[SETTINGS].allow_private_webhooks
    webhook, secret = await webhooks.create_webhook(
        request.app[ENGINE],
        acting(request),
        url=body.url,
        events=list(body.events),
        check_url=lambda url: checked_target(url, allow_private=allow_private),
    )
    return created(webhook.as_json(secret=secret), f"/webhooks/{webhook.id}")


@routes.get("/webhooks", query=PageQuery, response=Page[WebhookOut], errors=(403,))
async def get_webhooks(request: web.Request, query: PageQuery) -> web.Response:
    """List webhook endpoints, newest first (admin); secrets are never shown

    Each endpoint's URL, subscribed events and whether it is active. The signing secret was
    shown once, when the endpoint was registered.
    """
    hooks, next_key = await webhooks.webhooks_page(
        request.app[ENGINE],
        principal(request),
        after=page_after(request, query),
        limit=query.limit,
    )
    return page_response(request, [h.as_json() for h in hooks], next_key)


@routes.get("/webhooks/{webhook_id}", response=WebhookOut, errors=(403, 404))
async def get_webhook(request: web.Request, webhook_id: UUID) -> web.Response:
    """Read a webhook endpoint (admin); its secret is never shown

    A deleted endpoint, or another organization's, is `404`.
    """
    webhook = await webhooks.read_webhook(request.app[ENGINE], principal(request), webhook_id)
    return json_response(webhook.as_json())


@routes.patch(
    "/webhooks/{webhook_id}", body=UpdateWebhook, response=WebhookOut, errors=(403, 404, 409)
)
async def update_webhook(
    request: web.Request, webhook_id: UUID, body: UpdateWebhook
) -> web.Response:
    """Change a webhook endpoint's URL, events or whether it is active (admin)

    Give only what changes; the signing secret stays. A new URL is checked as at
    registration (`422 webhook_url_not_allowed`); resuming an endpoint counts toward the
    limit of 20 (`409 too_many_webhooks`). Audited as `webhook.updated`.
    """
    allow_private = request.app[SETTINGS].allow_private_webhooks
    webhook = await webhooks.update_webhook(
        request.app[ENGINE],
        acting(request),
        webhook_id,
        body.model_dump(exclude_unset=True),
        check_url=lambda url: checked_target(url, allow_private=allow_private),
    )
    return json_response(webhook.as_json())


@routes.post("/webhooks/{webhook_id}/test", response=WebhookTestOut, errors=(403, 404))
async def send_test_event(request: web.Request, webhook_id: UUID) -> web.Response:
    """Send a signed test event to a webhook endpoint now (admin)

    One `webhook.test` event, signed with the endpoint's secret exactly like real events,
    sent at once (5 s timeout, no retries, not stored). The answer says what the endpoint
    did; a failing endpoint is still a `200` here. Audited as `webhook.tested`.
    """
    webhook, secret = await webhooks.webhook_for_test(
        request.app[ENGINE], acting(request), webhook_id
    )
    allow_private = request.app[SETTINGS].allow_private_webhooks
    target = await checked_target(webhook.url, allow_private=allow_private)
    return json_response(await ping(webhook, secret, target))


@routes.delete("/webhooks/{webhook_id}", status=204, errors=(403, 404))
async def remove_webhook(request: web.Request, webhook_id: UUID) -> web.Response:
    """Delete a webhook endpoint (admin)

    Nothing more is sent to it; deliveries still pending end `FAILED`. Its delivery
    history stays readable. Audited as `webhook.deleted`.
    """
    await webhooks.delete_webhook(request.app[ENGINE], acting(request), webhook_id)
    return web.Response(status=204)


@routes.get(
    "/webhooks/{webhook_id}/deliveries",
    query=ListDeliveries,
    response=Page[DeliveryOut],
    errors=(403, 404),
)
async def get_deliveries(
    request: web.Request, webhook_id: UUID, query: ListDeliveries
) -> web.Response:
    """List a webhook's deliveries, newest first (admin)

    Each delivery shows every attempt (time, HTTP status or error, duration), its status
    (`PENDING`, `SUCCEEDED`, `FAILED`) and, while pending, when the next retry is due.
    """
    filters = DeliveryFilters(status=query.status, event_id=query.event_id)
    deliveries, next_key = await webhooks.deliveries_page(
        request.app[ENGINE],
        principal(request),
        webhook_id,
        filters,
        after=page_after(request, query),
        limit=query.limit,
    )
    return page_response(request, [d.as_json() for d in deliveries], next_key)


@routes.get("/events", query=ListEvents, response=Page[EventOut], errors=(403,))
async def get_events(request: web.Request, query: ListEvents) -> web.Response:
    """List the organization's events, newest first (admin)

    Every event the ledger recorded for this organization (whether or not an endpoint
    subscribes to it), with the body webhooks receive. Find an event to redeliver by
    `type` and by `resource_id`, the transfer (or wallet, settlement, run) it is about.
    """
    filters = EventFilters(type=query.type, resource_id=query.resource_id)
    events, next_key = await webhooks.events_page(
        request.app[ENGINE],
        principal(request),
        filters,
        after=page_after(request, query, ids=int),
        limit=query.limit,
    )
    return page_response(request, events, next_key)


@routes.post("/events/{event_id}/redeliver", response=RedeliveryOut, status=202, errors=(403, 404))
async def redeliver(request: web.Request, event_id: UUID) -> web.Response:
    """Send an event again to the organization's subscribed endpoints (admin)

    Creates a fresh delivery (with a full set of attempts) for every active endpoint
    subscribed to the event's type; the event keeps its id. Audited as
    `event.redelivered`.
    """
    deliveries = await webhooks.redeliver_event(request.app[ENGINE], acting(request), event_id)
    body = {"event_id": str(event_id), "deliveries": [d.as_json() for d in deliveries]}
    return json_response(body, status=202)

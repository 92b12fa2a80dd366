"""The audit trail: list an organization's records, and verify their hash chain (admin)."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.audit import AuditLogOut, AuditVerificationOut, ListAuditLogs
from gateway.schemas.common import Page
from gateway.state import ENGINE
from ledger_core.services.audit import AuditFilters, audit_page, verify_chain

routes = RouteTable(tag="Audit")


@routes.get("/audit-logs", query=ListAuditLogs, response=Page[AuditLogOut], errors=(403,))
async def get_audit_logs(request: web.Request, query: ListAuditLogs) -> web.Response:
    """List audit records, newest first (admin)

    Every sensitive action: signup, logins (succeeded and failed), users, wallets,
    transfers, webhooks, counterparties, reconciliation and settlement runs, each with
    the actor, client address, user agent, request id and details. Filters: `action`,
    `actor_id`, `resource_id`, and `from` (inclusive) / `to` (exclusive) on the time.
    Records are append-only: the database refuses to change or delete them.
    """
    after = page_after(request, query, ids=int)
    filters = AuditFilters(
        action=query.action,
        actor_id=query.actor_id,
        resource_id=query.resource_id,
        since=query.from_,
        until=query.to,
    )
    records, next_key = await audit_page(
        request.app[ENGINE], principal(request), filters, after=after, limit=query.limit
    )
    return page_response(request, records, next_key)


@routes.get("/audit-logs/verify", response=AuditVerificationOut, errors=(403,))
async def verify_audit_logs(request: web.Request) -> web.Response:
    """Verify the organization's audit hash chain (admin)

    Each record is sealed (within about a second of being written) with a `chain_seq`
    and `hash = sha256(prev_hash + canonical JSON of the record)`. This walks the chain
    and reports the first record whose link does not hold (`first_broken`), or
    `verified: true`. Records not yet sealed are counted in `unsealed_records`.
    """
    report = await verify_chain(request.app[ENGINE], principal(request))
    return json_response(report.as_json())

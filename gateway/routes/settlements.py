"""Settlements: net the cross-organization positions of the caller's organization, and read them.

`POST /settlements/run` settles at once, within the request, the pairs the caller's
organization belongs to, and answers `202` (the contract's status) with what it wrote.
Running it here rather than queueing it means the admin gets the settlement ids back and no
message can be lost; the work is bounded (one short database transaction per counterparty
and currency) and safe to race with the scheduled run, which settles every pair each minute.
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.common import Page
from gateway.schemas.settlements import ListSettlements, SettlementOut, SettlementRunOut
from gateway.state import ENGINE
from ledger_core.services import settlement
from ledger_core.services.settlement import SettlementFilter
from runtime import metrics

routes = RouteTable(tag="Settlements")


@routes.post("/settlements/run", response=SettlementRunOut, status=202, errors=(403,))
async def run_settlements(request: web.Request) -> web.Response:
    """Settle this organization's cross-organization positions now (admin)

    Nets, per counterparty and currency, every cross-organization transfer not yet in a
    settlement, writes one settlement for each and posts the entries that bring both
    clearing wallets back to zero. The answer lists the settlements written (empty when
    there was nothing to settle). The same job runs on a schedule for every organization.
    The status is `202` because the contract says so, but the work is done when it
    answers: `status` is always `COMPLETED` and there is nothing to poll.
    """
    written = await settlement.settle_now(request.app[ENGINE], acting(request))
    metrics.settlements_total.inc(len(written))
    body = {"status": "COMPLETED", "settlements": [s.as_json() for s in written]}
    return json_response(body, status=202)


@routes.get("/settlements", query=ListSettlements, response=Page[SettlementOut], errors=(403,))
async def get_settlements(request: web.Request, query: ListSettlements) -> web.Response:
    """List settlements where this organization pays or is paid, newest first (admin)

    Filters: `currency`, `payer_organization_id`, `payee_organization_id`.
    """
    f = SettlementFilter(
        currency=query.currency,
        payer_organization_id=query.payer_organization_id,
        payee_organization_id=query.payee_organization_id,
    )
    found, next_key = await settlement.settlements_page(
        request.app[ENGINE],
        principal(request),
        f,
        after=page_after(request, query),
        limit=query.limit,
    )
    return page_response(request, [s.as_json() for s in found], next_key)


@routes.get("/settlements/{settlement_id}", response=SettlementOut, errors=(403, 404))
async def read_settlement(request: web.Request, settlement_id: UUID) -> web.Response:
    """Read a settlement of this organization (admin)

    A settlement between two other organizations is `404`.
    """
    found = await settlement.read_settlement(request.app[ENGINE], principal(request), settlement_id)
    return json_response(found.as_json())

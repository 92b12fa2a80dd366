"""Reconciliation runs: ask for one now, list them, read what one found.

Runs are ledger-wide: one run checks the books of every organization. Scheduled runs are
visible to every admin; a run an organization asked for, only to it and to organizations
it found drift for. Discrepancies always belong to the organization whose books they are
in, and an admin only ever sees their own organization's
(`ledger_core.services.reconciliation`).
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.jobs import send_reconciliation
from gateway.pagination import page_after, page_response
from gateway.registry import API_PREFIX, RouteTable
from gateway.responses import json_response
from gateway.schemas.common import Page
from gateway.schemas.reconciliations import (
    ListReconciliations,
    ReconciliationOut,
    ReconciliationReportOut,
    RequestReconciliation,
)
from gateway.state import ENGINE
from ledger_core.reconciliation import Mode
from ledger_core.services import reconciliation

routes = RouteTable(tag="Reconciliation")

_TENANCY = (
    " A run checks the whole ledger, so `wallets_checked` and `entries_checked` count every"
    " organization's; `discrepancies` and `discrepancy_count` only ever cover the caller's"
    " own organization, never another tenant's wallets or transfers. Scheduled runs are"
    " visible to every admin; a run another organization asked for is `404` unless it found"
    " drift in the caller's books (the `reconciliation.drift_detected` event names it)."
)


@routes.post(
    "/reconciliations",
    body=RequestReconciliation,
    optional_body=True,
    created_path="/reconciliations/{reconciliation_id}",
    response=ReconciliationOut,
    status=202,
    errors=(403,),
    description=(
        "Queues a run for the reconciliation workers and answers `202` with the PENDING run;"
        " poll `GET /reconciliations/{id}` until it is COMPLETED or FAILED. The body is"
        " optional: on-demand runs are FULL unless `mode` says INCREMENTAL. Audited as"
        " `reconciliation.requested`." + _TENANCY
    ),
)
async def request_reconciliation(request: web.Request, body: RequestReconciliation) -> web.Response:
    """Run a reconciliation now (admin)"""
    run = await reconciliation.request_reconciliation(
        request.app[ENGINE],
        acting(request),
        Mode(body.mode),
        lambda run_id, mode: send_reconciliation(request.app, run_id, mode),
    )
    location = f"{API_PREFIX}/reconciliations/{run.id}"
    return json_response(run.as_json(), status=202, headers={"Location": location})


@routes.get(
    "/reconciliations",
    query=ListReconciliations,
    response=Page[ReconciliationOut],
    errors=(403,),
    description="Scheduled and requested runs alike." + _TENANCY,
)
async def get_reconciliations(request: web.Request, query: ListReconciliations) -> web.Response:
    """List reconciliation runs, newest first (admin)"""
    found, next_key = await reconciliation.runs_page(
        request.app[ENGINE], principal(request), after=page_after(request, query), limit=query.limit
    )
    return page_response(request, [run.as_json() for run in found], next_key)


@routes.get(
    "/reconciliations/{reconciliation_id}",
    response=ReconciliationReportOut,
    errors=(403, 404),
    description=(
        "Each discrepancy names where the ledger disagrees with itself: `kind`, the wallet,"
        " transfer, settlement or entry, and `expected` against `actual`. The first 1000 are"
        " listed, oldest first; `discrepancy_count` counts them all." + _TENANCY
    ),
)
async def get_reconciliation(request: web.Request, reconciliation_id: UUID) -> web.Response:
    """Read a reconciliation run and what it found in your books (admin)"""
    run, discrepancies = await reconciliation.report(
        request.app[ENGINE], principal(request), reconciliation_id
    )
    return json_response(run.as_json() | {"discrepancies": discrepancies})

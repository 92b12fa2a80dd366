"""Counterparties: the organizations whose transfers this organization accepts."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response
from gateway.schemas.common import Page
from gateway.schemas.counterparties import AddCounterparty, CounterpartyOut, ListCounterparties
from gateway.state import ENGINE
from ledger_core.services import counterparties

routes = RouteTable(tag="Counterparties")


@routes.post(
    "/counterparties",
    body=AddCounterparty,
    response=CounterpartyOut,
    status=201,
    errors=(403, 404, 409),
    created_path="/counterparties/{organization_id}",
)
async def create_counterparty(request: web.Request, body: AddCounterparty) -> web.Response:
    """Accept transfers from another organization (admin)

    From now on, the other organization may send cross-organization transfers to this
    organization's wallets; until then those wallets are invisible to it (`404`). The link
    is one-directional: sending back needs the other organization's admin to add this one.
    An unknown organization is `404`, an existing link `409 counterparty_exists`, this
    organization itself `422 self_counterparty`.
    """
    link = await counterparties.add_counterparty(
        request.app[ENGINE], acting(request), body.organization_id
    )
    return created(link.as_json(), f"/counterparties/{link.organization_id}")


@routes.get(
    "/counterparties", query=ListCounterparties, response=Page[CounterpartyOut], errors=(403,)
)
async def get_counterparties(request: web.Request, query: ListCounterparties) -> web.Response:
    """List the organizations this one accepts transfers from, newest first (admin)

    Each link lets the other organization send cross-organization transfers to this
    organization's wallets. Links are one-directional.
    """
    links, next_key = await counterparties.counterparties_page(
        request.app[ENGINE], principal(request), after=page_after(request, query), limit=query.limit
    )
    return page_response(request, [link.as_json() for link in links], next_key)


@routes.get("/counterparties/{organization_id}", response=CounterpartyOut, errors=(403, 404))
async def get_counterparty(request: web.Request, organization_id: UUID) -> web.Response:
    """Read the link to one organization this one accepts transfers from (admin)

    `404` when that organization is not a counterparty (or does not exist).
    """
    link = await counterparties.read_counterparty(
        request.app[ENGINE], principal(request), organization_id
    )
    return json_response(link.as_json())


@routes.delete("/counterparties/{organization_id}", status=204, errors=(403, 404))
async def delete_counterparty(request: web.Request, organization_id: UUID) -> web.Response:
    """Stop accepting transfers from an organization (admin)

    New transfers from it are refused as if the destination did not exist (`404`).
    Transfers already accepted still post, and open positions still settle.
    """
    await counterparties.remove_counterparty(request.app[ENGINE], acting(request), organization_id)
    return web.Response(status=204)

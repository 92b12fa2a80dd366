"""The caller's organization."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import principal
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.accounts import OrganizationOut
from gateway.state import ENGINE
from ledger_core.services.accounts import own_organization

routes = RouteTable(tag="Organizations")


@routes.get("/organizations/me", response=OrganizationOut)
async def my_organization(request: web.Request) -> web.Response:
    """The caller's organization

    Its id (what other organizations add as a counterparty) and name.
    """
    org = await own_organization(request.app[ENGINE], principal(request))
    return json_response(org.as_json())

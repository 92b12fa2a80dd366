"""The caller's organization."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import principal
from gateway.registry import RouteTable
from gateway.responses import json_response
from gateway.schemas.accounts import OrganizationOut
from gateway.state import ENGINE
from ledger_core.errors import NotFound
from ledger_core.persistence.accounts import get_organization

routes = RouteTable(tag="Organizations")


@routes.get("/organizations/me", response=OrganizationOut)
async def my_organization(request: web.Request) -> web.Response:
    """The caller's organization"""
    who = principal(request)
    async with request.app[ENGINE].connect() as conn:
        org = await get_organization(conn, who.organization_id)
    if org is None:
        raise NotFound("the organization no longer exists")
    return json_response(org.as_json())

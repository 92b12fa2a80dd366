"""API keys of the caller's organization (admin): create, list, revoke."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response
from gateway.schemas.api_keys import ApiKeyCreatedOut, ApiKeyOut, CreateApiKey, ListApiKeys
from gateway.schemas.common import Page
from gateway.state import ENGINE, KEY_CACHE
from ledger_core.api_keys import RateLimit
from ledger_core.services import api_keys

routes = RouteTable(tag="API keys")


@routes.post(
    "/api-keys",
    body=CreateApiKey,
    response=ApiKeyCreatedOut,
    status=201,
    errors=(403,),
    created_path="/api-keys/{key_id}",
)
async def create_api_key(request: web.Request, body: CreateApiKey) -> web.Response:
    """Create an API key (admin)

    The answer's `key` is the only time the key is shown; only its hash is stored. Use it
    as `Authorization: Bearer vk_...`. A key acts for the organization within its scopes.
    """
    limit = None
    if body.rate_limit_per_s is not None:
        limit = RateLimit(body.rate_limit_per_s, body.rate_limit_burst or body.rate_limit_per_s)
    key, whole = await api_keys.create_key(
        request.app[ENGINE],
        acting(request),
        name=body.name,
        scopes=[scope.value for scope in body.scopes],
        expires_at=body.expires_at,
        rate_limit=limit,
    )
    return created({**key.as_json(), "key": whole}, f"/api-keys/{key.id}")


@routes.get("/api-keys", query=ListApiKeys, response=Page[ApiKeyOut], errors=(403,))
async def get_api_keys(request: web.Request, query: ListApiKeys) -> web.Response:
    """List the organization's API keys, newest first, revoked ones included (admin)

    Names, scopes, prefixes and when each was last used; never the keys themselves.
    """
    keys, next_key = await api_keys.keys_page(
        request.app[ENGINE], principal(request), after=page_after(request, query), limit=query.limit
    )
    return page_response(request, [k.as_json() for k in keys], next_key)


@routes.get("/api-keys/{key_id}", response=ApiKeyOut, errors=(403, 404))
async def get_api_key(request: web.Request, key_id: UUID) -> web.Response:
    """Read an API key (admin); the key itself is never shown again

    Another organization's key is `404`.
    """
    key = await api_keys.read_key(request.app[ENGINE], principal(request), key_id)
    return json_response(key.as_json())


@routes.delete("/api-keys/{key_id}", status=204, errors=(403, 404))
async def revoke_api_key(request: web.Request, key_id: UUID) -> web.Response:
    """Revoke an API key (admin)

    Refused at once by this gateway process and within a second by every other.
    """
    await api_keys.revoke_key(request.app[ENGINE], acting(request), key_id)
    request.app[KEY_CACHE].forget_all()
    return web.Response(status=204)

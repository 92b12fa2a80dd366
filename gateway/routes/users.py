"""Users of the caller's organization (admin only)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from gateway.auth import acting, hash_password, principal
from gateway.pagination import page_after, page_response
from gateway.registry import RouteTable
from gateway.responses import created, json_response
from gateway.schemas.accounts import CreateUser, ListUsers, UpdateUser, UserOut
from gateway.schemas.common import Page
from gateway.state import ENGINE, KEY_CACHE, USER_CACHE
from ledger_core.accounts import Role
from ledger_core.services import accounts

routes = RouteTable(tag="Users")


@routes.post(
    "/users",
    body=CreateUser,
    response=UserOut,
    status=201,
    errors=(403, 409),
    created_path="/users/{user_id}",
)
async def create_user(request: web.Request, body: CreateUser) -> web.Response:
    """Add a user to the caller's organization (admin)

    An email already registered anywhere, in any case, is `409 email_taken`.
    """
    user = await accounts.add_user(
        request.app[ENGINE],
        acting(request),
        email=body.email,
        password=body.password,
        hasher=lambda password: hash_password(request.app, password),
        full_name=body.full_name,
        role=Role(body.role),
    )
    return created(user.as_json(), f"/users/{user.id}")


@routes.get("/users", query=ListUsers, response=Page[UserOut], errors=(403,))
async def get_users(request: web.Request, query: ListUsers) -> web.Response:
    """List the organization's users, newest first (admin)

    Members may not list users (`403`). Paginated: pass `next_cursor` as `?cursor=`.
    """
    users, next_key = await accounts.users_page(
        request.app[ENGINE], principal(request), after=page_after(request, query), limit=query.limit
    )
    return page_response(request, [u.as_json() for u in users], next_key)


@routes.get("/users/{user_id}", response=UserOut, errors=(403, 404))
async def get_user(request: web.Request, user_id: UUID) -> web.Response:
    """Read a user of the organization (admin, or the user themselves)

    The same fields as in `GET /users`. A user of another organization is `404`.
    """
    user = await accounts.read_user(request.app[ENGINE], principal(request), user_id)
    return json_response(user.as_json())


@routes.patch("/users/{user_id}", body=UpdateUser, response=UserOut, errors=(403, 404, 409))
async def update_user(request: web.Request, user_id: UUID, body: UpdateUser) -> web.Response:
    """Change a user's role or deactivate them (admin)

    A deactivated user's tokens stop working at once. A user who is deactivated or made a
    `MEMBER` also loses the API keys they created: revoked at once and for good, as a key
    acts with its creator's authority. The organization's last active admin cannot be
    demoted or deactivated: `409 last_admin`.
    """
    user = await accounts.update_user(
        request.app[ENGINE],
        acting(request),
        user_id,
        role=None if body.role is None else Role(body.role),
        is_active=body.is_active,
    )
    request.app[USER_CACHE].forget(user_id)
    if not user.is_active or user.role is not Role.ADMIN:  # their keys were revoked
        request.app[KEY_CACHE].forget_all()
    return json_response(user.as_json())

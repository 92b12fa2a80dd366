"""Signup, login and the caller's own identity."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import (
    acting,
    audit_context,
    check_password,
    hash_password,
    hash_password_sync,
    principal,
    token_body,
)
from gateway.client_address import client_address
from gateway.hashing import HASHING
from gateway.registry import RouteTable
from gateway.responses import Problem, created, json_response
from gateway.schemas.accounts import ChangePassword, Login, MeOut, Signup, SignupOut, TokenOut
from gateway.state import ENGINE, REDIS, SETTINGS, USER_CACHE
from gateway.throttle import (
    check_login_allowed,
    clear_login_failures,
    count_signup,
    record_login_failure,
)
from ledger_core.services import accounts
from runtime import metrics

routes = RouteTable(tag="Auth")

_dummy_hash: dict[int, bytes] = {}


@routes.post(
    "/auth/signup",
    body=Signup,
    response=SignupOut,
    status=201,
    auth=False,
    errors=(409, 429),
    created_path="/auth/me",
)
async def signup(request: web.Request, body: Signup) -> web.Response:
    """Create an organization and its first admin

    Also creates the organization's SYSTEM wallet in `default_currency` (default INR).
    An email already registered, in any case, is `409 email_taken`. Passwords are 10 to
    128 characters. Signups from one client address are limited
    (`VAULTCRAFT_SIGNUP_LIMIT` per 15 minutes); beyond that, `429 too_many_attempts`
    with `Retry-After`.
    """
    await count_signup(
        request.app[REDIS], client_address(request), request.app[SETTINGS].signup_limit
    )
    password_hash = await hash_password(request.app, body.password)
    org, user, _ = await accounts.sign_up(
        request.app[ENGINE],
        audit_context(request),
        email=body.email,
        password_hash=password_hash,
        full_name=body.full_name,
        organization_name=body.organization_name,
        default_currency=body.default_currency,
    )
    answer: dict[str, object] = {"user": user.as_json(), "organization": org.as_json()}
    answer.update(token_body(request.app[SETTINGS], user.id, org.id))
    return created(answer, "/auth/me")


@routes.post("/auth/login", body=Login, response=TokenOut, auth=False, errors=(401, 429))
async def login(request: web.Request, body: Login) -> web.Response:
    """Exchange email and password for an access token

    A wrong email and a wrong password get the same `401 invalid_credentials`, in the
    same time. Repeated failures for one email or from one address are refused with
    `429 too_many_attempts` and `Retry-After`.
    """
    app, address = request.app, client_address(request)
    await check_login_allowed(app[REDIS], body.email, address)
    facts = await accounts.login_facts(app[ENGINE], body.email)
    hashed = facts.password_hash if facts is not None else await _dummy(request)
    matches = await check_password(app, body.password, hashed)
    if facts is None or not matches or not facts.is_active:
        reason = "unknown_email" if facts is None else "inactive" if matches else "wrong_password"
        await record_login_failure(app[REDIS], body.email, address)
        metrics.login_failures_total.inc()
        await accounts.record_login(app[ENGINE], audit_context(request), facts, body.email, reason)
        raise Problem(401, "invalid_credentials", "the email or the password is wrong")
    await clear_login_failures(app[REDIS], body.email)
    await accounts.record_login(app[ENGINE], audit_context(request), facts, body.email, None)
    return json_response(
        token_body(app[SETTINGS], facts.user_id, facts.organization_id, facts.token_version)
    )


async def _dummy(request: web.Request) -> bytes:
    """A hash to check unknown emails against, so they cost as much time as known ones."""
    rounds = request.app[SETTINGS].bcrypt_rounds
    if rounds not in _dummy_hash:
        dummy = "not a password of anyone"
        _dummy_hash[rounds] = await request.app[HASHING].logins.run(
            hash_password_sync, dummy, rounds
        )
    return _dummy_hash[rounds]


@routes.get("/auth/me", response=MeOut)
async def me(request: web.Request) -> web.Response:
    """The caller and their organization

    Who the bearer token belongs to: the user, with the same fields as in `GET /users`, and
    their organization.
    Use it to learn your role and organization id after login.
    """
    user, org = await accounts.me(request.app[ENGINE], principal(request))
    return json_response({**user.as_json(), "organization": {"id": str(org.id), "name": org.name}})


@routes.post("/auth/password", body=ChangePassword, status=204, errors=(403,))
async def change_password(request: web.Request, body: ChangePassword) -> web.Response:
    """Change the caller's password

    Every access token issued before stops working, this request's included: log in
    again. A wrong `current_password` is `422 wrong_password`.
    """
    who = acting(request)
    await accounts.change_password(
        request.app[ENGINE],
        who,
        current_password=body.current_password,
        new_password=body.new_password,
        checker=lambda password, hashed: check_password(request.app, password, hashed),
        hasher=lambda password: hash_password(request.app, password),
    )
    request.app[USER_CACHE].forget(who.principal.user_id)
    return web.Response(status=204)

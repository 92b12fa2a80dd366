"""Signup, login and the caller's own identity."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import (
    audit_context,
    check_password,
    hash_password,
    hash_password_sync,
    principal,
    token_body,
)
from gateway.registry import RouteTable
from gateway.responses import Problem, json_response
from gateway.schemas.accounts import Login, MeOut, Signup, SignupOut, TokenOut
from gateway.state import ENGINE, HASHING, REDIS, SETTINGS
from gateway.throttle import (
    check_login_allowed,
    clear_login_failures,
    count_signup,
    record_login_failure,
)
from ledger_core.errors import NotFound
from ledger_core.persistence.accounts import get_organization, get_user, login_facts
from ledger_core.persistence.audit import audit_insert
from ledger_core.persistence.onboarding import sign_up
from vaultcraft import metrics

routes = RouteTable(tag="Auth")

_dummy_hash: dict[int, bytes] = {}


@routes.post(
    "/auth/signup",
    body=Signup,
    response=SignupOut,
    status=201,
    auth=False,
    errors=(409, 429),
)
async def signup(request: web.Request, body: Signup) -> web.Response:
    """Create an organization and its first admin

    Also creates the organization's SYSTEM wallet in `default_currency` (default INR).
    An email already registered, in any case, is `409 email_taken`. Passwords are 10 to
    128 characters. Signups from one client address are limited
    (`VAULTCRAFT_SIGNUP_LIMIT` per 15 minutes); beyond that, `429 too_many_attempts`
    with `Retry-After`.
    """
    await count_signup(request.app[REDIS], request.remote, request.app[SETTINGS].signup_limit)
    password_hash = await hash_password(request.app, body.password)
    async with request.app[ENGINE].begin() as conn:
        org, user, _ = await sign_up(
            conn,
            audit_context(request),
            email=body.email,
            password_hash=password_hash,
            full_name=body.full_name,
            organization_name=body.organization_name,
            default_currency=body.default_currency,
        )
    answer: dict[str, object] = {"user": user.as_json(), "organization": org.as_json()}
    answer.update(token_body(request.app[SETTINGS], user.id, org.id))
    return json_response(answer, status=201)


@routes.post("/auth/login", body=Login, response=TokenOut, auth=False, errors=(401, 429))
async def login(request: web.Request, body: Login) -> web.Response:
    """Exchange email and password for an access token

    A wrong email and a wrong password get the same `401 invalid_credentials`, in the
    same time. Repeated failures for one email or from one address are refused with
    `429 too_many_attempts` and `Retry-After`.
    """
    app, address = request.app, request.remote
    await check_login_allowed(app[REDIS], body.email, address)
    async with app[ENGINE].connect() as conn:
        facts = await login_facts(conn, body.email)
    hashed = facts.password_hash if facts is not None else await _dummy(request)
    matches = await check_password(app, body.password, hashed)
    if facts is None or not matches or not facts.is_active:
        reason = "unknown_email" if facts is None else "inactive" if matches else "wrong_password"
        await record_login_failure(app[REDIS], body.email, address)
        metrics.login_failures_total.inc()
        ctx = audit_context(request).acting(
            actor_id=None, organization_id=None if facts is None else facts.organization_id
        )
        details = {"email": body.email, "reason": reason}
        if facts is not None:
            details["user_id"] = str(facts.user_id)
        async with app[ENGINE].begin() as conn:
            await conn.execute(
                audit_insert(ctx, "auth.login_failed", resource_type="user", details=details)
            )
        raise Problem(401, "invalid_credentials", "the email or the password is wrong")
    await clear_login_failures(app[REDIS], body.email)
    ctx = audit_context(request).acting(
        actor_id=facts.user_id, organization_id=facts.organization_id
    )
    async with app[ENGINE].begin() as conn:
        await conn.execute(
            audit_insert(
                ctx, "auth.login_succeeded", resource_type="user", resource_id=facts.user_id
            )
        )
    return json_response(token_body(app[SETTINGS], facts.user_id, facts.organization_id))


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
    """The caller and their organization"""
    who = principal(request)
    async with request.app[ENGINE].connect() as conn:
        user = await get_user(conn, who.organization_id, who.user_id)
        org = await get_organization(conn, who.organization_id)
    if user is None or org is None:
        raise NotFound("the caller no longer exists")
    return json_response(
        {
            "id": str(user.id),
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role.value,
            "organization": {"id": str(org.id), "name": org.name},
        }
    )

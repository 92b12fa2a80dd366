"""Who is calling: passwords, access tokens, and the request's principal.

Passwords are hashed with bcrypt over base64(SHA-256(password)), so every character
counts (bcrypt alone ignores bytes past 72), on the bounded pools of `gateway.hashing`
so the event loop never waits on it and signups cannot crowd out logins. Tokens are
HS256 JWTs with `sub`, `iat` and `exp` required and the algorithm pinned, so `alg: none`
and key-confusion tokens are refused. A token is only as good as its user: each request
checks the user is still active (cached about a second).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from uuid import UUID

import bcrypt
import jwt
from aiohttp import web

from gateway.client_address import client_address
from gateway.hashing import HASHING
from gateway.key_auth import authenticate_key
from gateway.responses import unauthorized
from gateway.state import ENGINE, PRINCIPAL, REQUEST_ID, SETTINGS, USER_CACHE
from gateway.user_cache import ActiveUserCache
from ledger_core.accounts import Principal
from ledger_core.acting import Acting, AuditContext
from ledger_core.api_keys import KEY_PREFIX
from ledger_core.services.accounts import active_principal
from runtime.settings import Settings

ALGORITHM = "HS256"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password_sync(password: str, rounds: int) -> bytes:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds))


def check_password_sync(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed)
    except ValueError:  # a stored hash that is not bcrypt never matches
        return False


async def hash_password(app: web.Application, password: str) -> bytes:
    """A hash of a password being set, on the new-password pool."""
    rounds = app[SETTINGS].bcrypt_rounds
    return await app[HASHING].new_passwords.run(hash_password_sync, password, rounds)


async def check_password(app: web.Application, password: str, hashed: bytes) -> bool:
    """Whether a login's password matches, on the login pool."""
    return await app[HASHING].logins.run(check_password_sync, password, hashed)


def issue_token(
    settings: Settings, user_id: UUID, organization_id: UUID, token_version: int = 0
) -> str:
    """A token for a user; their role is read afresh on every request, never trusted here.

    `ver` is the user's token version: a password change raises it, retiring this token.
    """
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "org": str(organization_id),
        "ver": token_version,
        "iat": now,
        "exp": now + settings.token_ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def token_body(
    settings: Settings, user_id: UUID, organization_id: UUID, token_version: int = 0
) -> dict[str, object]:
    """The `{access_token, token_type, expires_in}` answer of signup and login."""
    return {
        "access_token": issue_token(settings, user_id, organization_id, token_version),
        "token_type": "bearer",
        "expires_in": settings.token_ttl_s,
    }


def verified_claims(settings: Settings, token: str) -> tuple[float, UUID, int]:
    """The expiry, user id and token version of a valid token; any doubt is a 401."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
        return float(claims["exp"]), UUID(str(claims["sub"])), int(claims.get("ver", 0))
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise unauthorized("the access token is invalid or expired") from None


async def authenticate(request: web.Request) -> Principal:
    """The caller of a protected route, from its bearer token or API key, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send Authorization: Bearer <access token or API key>")
    token = token.strip()
    if token.startswith(KEY_PREFIX):
        return await authenticate_key(request, token)
    cache = request.app[USER_CACHE]
    known_token = cache.token(token)
    if known_token is None:
        expires_at, user_id, version = verified_claims(request.app[SETTINGS], token)
        cache.remember_token(token, expires_at, user_id, version)
    else:
        user_id, version = known_token
    known, found = cache.get(user_id)
    if not known:
        found = await _look_up_once(request, cache, user_id)
    if found is None:
        raise unauthorized("the access token's user no longer exists or is deactivated")
    if found.token_version != version:
        raise unauthorized("the access token was issued before the password changed")
    return found


async def _look_up_once(
    request: web.Request, cache: ActiveUserCache, user_id: UUID
) -> Principal | None:
    """One database lookup per user at a time; concurrent requests await the same answer."""
    pending = cache.lookups.get(user_id)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
    cache.lookups[user_id] = future
    try:
        found = await active_principal(request.app[ENGINE], user_id)
        cache.put(user_id, found)
        future.set_result(found)
        return found
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved here, so an unawaited failure is not logged twice
        raise
    finally:
        del cache.lookups[user_id]


def principal(request: web.Request) -> Principal:
    """The authenticated caller of this request (routes declared with `auth=True`)."""
    return request[PRINCIPAL]


def audit_context(request: web.Request) -> AuditContext:
    """Where this request comes from, attributed to its caller when there is one."""
    who = request.get(PRINCIPAL)
    key_id = None if who is None else who.key_id
    return AuditContext(
        client_address=client_address(request),
        user_agent=request.headers.get("User-Agent"),
        request_id=request.get(REQUEST_ID),
        actor_id=None if who is None else key_id or who.user_id,
        organization_id=None if who is None else who.organization_id,
        actor_type="user" if key_id is None else "api_key",
    )


def acting(request: web.Request) -> Acting:
    """The caller of this request and where it comes from, as use cases take them."""
    return Acting(principal(request), audit_context(request))


__all__ = [
    "ActiveUserCache",
    "acting",
    "audit_context",
    "authenticate",
    "check_password",
    "hash_password",
    "principal",
    "token_body",
    "unauthorized",
]

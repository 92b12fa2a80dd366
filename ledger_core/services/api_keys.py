"""API keys: an admin creates, lists and revokes them; the gateway resolves them per request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core import api_keys
from ledger_core.accounts import Principal, Role, require_admin
from ledger_core.acting import Acting
from ledger_core.api_keys import ApiKey, RateLimit
from ledger_core.errors import DomainError, NotFound
from ledger_core.keyset import Keyset
from ledger_core.persistence.accounts import api_keys as store
from ledger_core.persistence.accounts.store import notify_credentials_changed
from ledger_core.persistence.audit.records import audit_insert


async def create_key(
    engine: AsyncEngine,
    acting: Acting,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    rate_limit: RateLimit | None,
) -> tuple[ApiKey, str]:
    """A new key of the caller's organization and the one time its full value is known."""
    require_admin(acting.principal)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise DomainError("expires_at must be in the future", field="expires_at")
    key_id, secret = uuid.uuid4(), api_keys.new_secret()
    async with engine.begin() as conn:
        key = await store.insert_key(
            conn,
            key_id=key_id,
            organization_id=acting.principal.organization_id,
            name=name,
            scopes=sorted(set(scopes)),
            secret_hash=api_keys.secret_hash(secret),
            created_by=acting.principal.user_id,
            expires_at=expires_at,
            rate_limit=rate_limit,
        )
        await conn.execute(
            audit_insert(
                acting.audit,
                "api_key.created",
                resource_type="api_key",
                resource_id=key.id,
                details={"name": name, "scopes": list(key.scopes)},
            )
        )
    return key, api_keys.compose(key_id, secret)


async def keys_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[ApiKey], Keyset | None]:
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_keys(conn, principal.organization_id, after=after, limit=limit)


async def read_key(engine: AsyncEngine, principal: Principal, key_id: UUID) -> ApiKey:
    require_admin(principal)
    async with engine.connect() as conn:
        key = await store.read_key(conn, principal.organization_id, key_id)
    if key is None:
        raise NotFound("no such API key")
    return key


async def revoke_key(engine: AsyncEngine, acting: Acting, key_id: UUID) -> None:
    require_admin(acting.principal)
    async with engine.begin() as conn:
        if not await store.revoke_key(conn, acting.principal.organization_id, key_id):
            raise NotFound("no such API key")
        await notify_credentials_changed(conn, "key", key_id)
        await conn.execute(
            audit_insert(
                acting.audit, "api_key.revoked", resource_type="api_key", resource_id=key_id
            )
        )


async def revoke_keys_of(conn: AsyncConnection, acting: Acting, user_id: UUID, reason: str) -> int:
    """Revoke every live key `user_id` created, in the caller's transaction: a key acts with
    its creator's authority, so it ends when they stop being an active admin. Each gateway
    forgets the keys at commit; each revocation is audited with `reason`."""
    revoked = await store.revoke_keys_of_creator(conn, acting.principal.organization_id, user_id)
    for key_id in revoked:
        await notify_credentials_changed(conn, "key", key_id)
        await conn.execute(
            audit_insert(
                acting.audit,
                "api_key.revoked",
                resource_type="api_key",
                resource_id=key_id,
                details={"reason": reason, "created_by": str(user_id)},
            )
        )
    return len(revoked)


async def key_principal(engine: AsyncEngine, key: str) -> tuple[Principal, ApiKey] | None:
    """The principal a presented key acts as, or None: malformed, unknown, wrong secret,
    revoked or expired keys are all just refused, and so is a key whose creator is no longer
    an active admin (their keys are revoked then; this also covers keys of older data)."""
    parsed = api_keys.parse(key)
    if parsed is None:
        return None
    key_id, secret = parsed
    async with engine.connect() as conn:
        found = await store.key_with_hash(conn, key_id)
    if found is None:
        api_keys.secret_matches(secret, bytes(32))  # unknown ids cost the same comparison
        return None
    stored, stored_hash, creator_is_admin = found
    if not api_keys.secret_matches(secret, stored_hash):
        return None
    if not (creator_is_admin and stored.usable_at(datetime.now(UTC))):
        return None
    return (
        Principal(
            user_id=stored.created_by,
            organization_id=stored.organization_id,
            role=Role.ADMIN,
            key_id=stored.id,
            scopes=frozenset(stored.scopes),
        ),
        stored,
    )


async def touch_key(engine: AsyncEngine, key_id: UUID) -> None:
    """Note that a key was used (at most once a minute is written)."""
    async with engine.begin() as conn:
        await store.touch_key(conn, key_id)

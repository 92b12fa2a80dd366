"""Storage of API keys: insert, list, revoke, and the per-request lookup by id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.api_keys import ApiKey, RateLimit
from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.tables import api_keys, users

_COLUMNS = (
    api_keys.c.id,
    api_keys.c.organization_id,
    api_keys.c.name,
    api_keys.c.scopes,
    api_keys.c.created_by,
    api_keys.c.created_at,
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
    api_keys.c.rate_limit_per_s,
    api_keys.c.rate_limit_burst,
)


def _key(row: Row[*tuple[Any, ...]]) -> ApiKey:
    limit = None
    if row.rate_limit_per_s is not None:
        limit = RateLimit(row.rate_limit_per_s, row.rate_limit_burst or row.rate_limit_per_s)
    return ApiKey(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        rate_limit=limit,
    )


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: UUID,
    organization_id: UUID,
    name: str,
    scopes: list[str],
    secret_hash: bytes,
    created_by: UUID,
    expires_at: datetime | None,
    rate_limit: RateLimit | None,
) -> ApiKey:
    row = (
        await conn.execute(
            api_keys.insert()
            .values(
                id=key_id,
                organization_id=organization_id,
                name=name,
                scopes=scopes,
                secret_hash=secret_hash,
                created_by=created_by,
                expires_at=expires_at,
                rate_limit_per_s=None if rate_limit is None else rate_limit.per_s,
                rate_limit_burst=None if rate_limit is None else rate_limit.burst,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return _key(row)


async def list_keys(
    conn: AsyncConnection, organization_id: UUID, *, after: Keyset | None, limit: int
) -> tuple[list[ApiKey], Keyset | None]:
    stmt = select(*_COLUMNS).where(api_keys.c.organization_id == organization_id)
    stmt = newest_first(stmt, api_keys.c.created_at, api_keys.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [_key(r) for r in page], next_key


async def read_key(conn: AsyncConnection, organization_id: UUID, key_id: UUID) -> ApiKey | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(
                api_keys.c.id == key_id, api_keys.c.organization_id == organization_id
            )
        )
    ).one_or_none()
    return None if row is None else _key(row)


async def revoke_key(conn: AsyncConnection, organization_id: UUID, key_id: UUID) -> bool:
    """Revoke a key of the organization (again is a no-op); False when it is not theirs."""
    found = await conn.scalar(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.organization_id == organization_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
        .returning(api_keys.c.id)
    )
    return found is not None


async def revoke_keys_of_creator(
    conn: AsyncConnection, organization_id: UUID, user_id: UUID
) -> list[UUID]:
    """Revoke the live keys a user created; the ids revoked now."""
    rows = await conn.execute(
        api_keys.update()
        .where(
            api_keys.c.organization_id == organization_id,
            api_keys.c.created_by == user_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(api_keys.c.id)
    )
    return [row.id for row in rows]


_CREATOR_IS_ACTIVE_ADMIN = (users.c.is_active.is_(True) & (users.c.role == "ADMIN")).label(
    "creator_is_active_admin"
)


async def key_with_hash(conn: AsyncConnection, key_id: UUID) -> tuple[ApiKey, bytes, bool] | None:
    """A key, its stored secret hash and whether its creator is still an active admin, by
    primary key (the per-request lookup)."""
    row = (
        await conn.execute(
            select(*_COLUMNS, api_keys.c.secret_hash, _CREATOR_IS_ACTIVE_ADMIN)
            .join(users, users.c.id == api_keys.c.created_by)
            .where(api_keys.c.id == key_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return _key(row), bytes(row.secret_hash), bool(row.creator_is_active_admin)


_TOUCH = text("""
    UPDATE api_keys SET last_used_at = now()
    WHERE id = :key_id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
""")


async def touch_key(conn: AsyncConnection, key_id: UUID) -> None:
    """Record a use, at most once a minute per key whichever process asks."""
    await conn.execute(_TOUCH, {"key_id": key_id})

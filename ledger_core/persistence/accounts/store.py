"""Storage of organizations and users (SQLAlchemy Core, async).

Functions take an open `AsyncConnection` inside the caller's transaction, so a signup's
organization, admin user, SYSTEM wallet and audit record commit together or not at all.
Every lookup a tenant can reach is scoped by organization: another tenant's rows are
simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Row, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Organization, Principal, Role, User
from ledger_core.channels import CREDENTIALS_CHANNEL
from ledger_core.errors import EmailTaken
from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import newest_page
from ledger_core.persistence.rows import exactly_one, one_or_none, owned
from ledger_core.persistence.tables import organizations, users

_USER_COLUMNS = (
    users.c.id,
    users.c.organization_id,
    users.c.email,
    users.c.full_name,
    users.c.role,
    users.c.is_active,
    users.c.created_at,
)


@dataclass(frozen=True)
class LoginFacts:
    """What a login needs to know about an email: whose it is and the hash to check."""

    user_id: UUID
    organization_id: UUID
    password_hash: bytes
    is_active: bool
    token_version: int = 0


def _user(row: Row[*tuple[Any, ...]]) -> User:
    return User(
        id=row.id,
        organization_id=row.organization_id,
        email=row.email,
        full_name=row.full_name,
        role=Role(row.role),
        is_active=row.is_active,
        created_at=row.created_at,
    )


def _organization(row: Row[Any]) -> Organization:
    return Organization(row.id, row.name, row.default_currency, row.created_at)


async def create_organization(
    conn: AsyncConnection, name: str, default_currency: str
) -> Organization:
    insert = organizations.insert().values(name=name, default_currency=default_currency)
    return await exactly_one(conn, insert.returning(*organizations.c), _organization)


async def get_organization(conn: AsyncConnection, organization_id: UUID) -> Organization | None:
    stmt = select(organizations).where(organizations.c.id == organization_id)
    return await one_or_none(conn, stmt, _organization)


async def create_user(
    conn: AsyncConnection,
    *,
    organization_id: UUID,
    email: str,
    password_hash: bytes,
    full_name: str,
    role: Role,
) -> User:
    """Insert a user; an email already used (in any case, by any tenant) is `EmailTaken`.

    The unique index on lower(email) is the arbiter, so two signups racing for one address
    end with one user and one 409, never two users.
    """
    if await email_exists(conn, email):
        raise EmailTaken("this email is already registered", field="email")
    insert = users.insert().values(
        organization_id=organization_id,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=role.value,
    )
    try:
        return await exactly_one(conn, insert.returning(*_USER_COLUMNS), _user)
    except IntegrityError as exc:
        if "uq_users_email_lower" in str(exc.orig):
            raise EmailTaken("this email is already registered", field="email") from None
        raise


async def email_exists(conn: AsyncConnection, email: str) -> bool:
    found = await conn.scalar(select(users.c.id).where(func.lower(users.c.email) == email.lower()))
    return found is not None


async def login_facts(conn: AsyncConnection, email: str) -> LoginFacts | None:
    stmt = select(
        users.c.id,
        users.c.organization_id,
        users.c.password_hash,
        users.c.is_active,
        users.c.token_version,
    ).where(func.lower(users.c.email) == email.lower())
    return await one_or_none(
        conn,
        stmt,
        lambda row: LoginFacts(
            row.id, row.organization_id, bytes(row.password_hash), row.is_active, row.token_version
        ),
    )


async def active_principal(conn: AsyncConnection, user_id: UUID) -> Principal | None:
    """The user as a caller, with their current role; None once deleted or deactivated."""
    stmt = select(users.c.organization_id, users.c.role, users.c.token_version).where(
        users.c.id == user_id, users.c.is_active.is_(True)
    )
    return await one_or_none(
        conn,
        stmt,
        lambda row: Principal(
            user_id=user_id,
            organization_id=row.organization_id,
            role=Role(row.role),
            token_version=row.token_version,
        ),
    )


async def get_user(conn: AsyncConnection, organization_id: UUID, user_id: UUID) -> User | None:
    stmt = select(*_USER_COLUMNS).where(*owned(users, organization_id, user_id))
    return await one_or_none(conn, stmt, _user)


async def list_users(
    conn: AsyncConnection, organization_id: UUID, *, after: Keyset | None, limit: int
) -> tuple[list[User], Keyset | None]:
    stmt = select(*_USER_COLUMNS).where(users.c.organization_id == organization_id)
    return await newest_page(conn, stmt, users, _user, after=after, limit=limit)


async def lock_active_admins(conn: AsyncConnection, organization_id: UUID) -> list[UUID]:
    """Lock the organization's active admins (in id order), so that two changes racing to
    remove the last one are decided one after the other."""
    rows = await conn.execute(
        select(users.c.id)
        .where(
            users.c.organization_id == organization_id,
            users.c.role == Role.ADMIN.value,
            users.c.is_active.is_(True),
        )
        .order_by(users.c.id)
        .with_for_update()
    )
    return [row.id for row in rows]


async def update_user(
    conn: AsyncConnection, organization_id: UUID, user_id: UUID, changes: dict[str, Any]
) -> User | None:
    """Apply `changes` (role, is_active) to a user of the organization; None if not theirs."""
    values = {**changes}
    if not values:
        return await get_user(conn, organization_id, user_id)
    if "role" in values:
        values["role"] = Role(values["role"]).value
    update = users.update().where(*owned(users, organization_id, user_id)).values(**values)
    return await one_or_none(conn, update.returning(*_USER_COLUMNS), _user)


async def password_hash_of(conn: AsyncConnection, user_id: UUID) -> bytes | None:
    found = await conn.scalar(select(users.c.password_hash).where(users.c.id == user_id))
    return None if found is None else bytes(found)


async def set_password(conn: AsyncConnection, user_id: UUID, password_hash: bytes) -> None:
    """Store a new password hash and retire every token issued before it."""
    await conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, token_version=users.c.token_version + 1)
    )


async def notify_credentials_changed(conn: AsyncConnection, kind: str, item_id: UUID) -> None:
    """Tell every gateway, at commit, to forget what it remembers of a user or a key."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CREDENTIALS_CHANNEL, "payload": f"{kind}:{item_id}"},
    )

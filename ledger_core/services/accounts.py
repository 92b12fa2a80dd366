"""Signing up an organization and adding its users: each a single database transaction.

Password hashing happens before, at the edge; these functions store what they are given
and write the audit record of the action alongside it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Organization, Principal, Role, User, require_admin
from ledger_core.money import exponent
from ledger_core.persistence.accounts import create_organization, create_user
from ledger_core.persistence.audit import AuditContext, audit_insert
from ledger_core.persistence.wallets import insert_wallet
from ledger_core.wallets import Wallet, WalletType


async def sign_up(
    conn: AsyncConnection,
    audit: AuditContext,
    *,
    email: str,
    password_hash: bytes,
    full_name: str,
    organization_name: str,
    default_currency: str,
) -> tuple[Organization, User, Wallet]:
    """Create an organization, its first ADMIN and its SYSTEM wallet in its currency."""
    exponent(default_currency)
    org = await create_organization(conn, organization_name, default_currency)
    user = await create_user(
        conn,
        organization_id=org.id,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=Role.ADMIN,
    )
    system = await insert_wallet(
        conn,
        organization_id=org.id,
        user_id=None,
        wallet_type=WalletType.SYSTEM,
        currency=default_currency,
        name="System",
    )
    await conn.execute(
        audit_insert(
            audit.acting(actor_id=user.id, organization_id=org.id),
            "auth.signup",
            resource_type="organization",
            resource_id=org.id,
            details={"email": email, "system_wallet_id": str(system.id)},
        )
    )
    return org, user, system


async def add_user(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    *,
    email: str,
    password_hash: bytes,
    full_name: str,
    role: Role,
) -> User:
    """An admin adds a user to their own organization."""
    require_admin(principal)
    user = await create_user(
        conn,
        organization_id=principal.organization_id,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=role,
    )
    await conn.execute(
        audit_insert(
            audit,
            "user.created",
            resource_type="user",
            resource_id=user.id,
            details={"email": email, "role": role.value},
        )
    )
    return user

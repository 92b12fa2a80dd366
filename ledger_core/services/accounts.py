"""Organizations and their users: signing up, logging in, adding and listing users.

Password hashing happens before, at the edge; these use cases store what they are given
and write the audit record of each action alongside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_core.accounts import Organization, Principal, Role, User, require_admin
from ledger_core.acting import Acting, AuditContext
from ledger_core.errors import Forbidden, LastAdmin, NotFound, WrongPassword
from ledger_core.keyset import Keyset
from ledger_core.money import exponent
from ledger_core.persistence.accounts import store
from ledger_core.persistence.accounts.store import LoginFacts
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.wallets.store import insert_wallet
from ledger_core.services.api_keys import revoke_keys_of
from ledger_core.wallets import Wallet, WalletType


async def sign_up(
    engine: AsyncEngine,
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
    async with engine.begin() as conn:
        org = await store.create_organization(conn, organization_name, default_currency)
        user = await store.create_user(
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
    engine: AsyncEngine,
    acting: Acting,
    *,
    email: str,
    password: str,
    hasher: Callable[[str], Awaitable[bytes]],
    full_name: str,
    role: Role,
) -> User:
    """An admin adds a user to their own organization (the password is hashed only then)."""
    require_admin(acting.principal)
    password_hash = await hasher(password)
    async with engine.begin() as conn:
        user = await store.create_user(
            conn,
            organization_id=acting.principal.organization_id,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            role=role,
        )
        await conn.execute(
            audit_insert(
                acting.audit,
                "user.created",
                resource_type="user",
                resource_id=user.id,
                details={"email": email, "role": role.value},
            )
        )
    return user


async def users_page(
    engine: AsyncEngine, principal: Principal, *, after: Keyset | None, limit: int
) -> tuple[list[User], Keyset | None]:
    """The organization's users, newest first (admins only)."""
    require_admin(principal)
    async with engine.connect() as conn:
        return await store.list_users(conn, principal.organization_id, after=after, limit=limit)


async def read_user(engine: AsyncEngine, principal: Principal, user_id: UUID) -> User:
    """One user of the organization: admins read anyone, a member only themselves."""
    if user_id != principal.user_id:
        require_admin(principal)
    async with engine.connect() as conn:
        user = await store.get_user(conn, principal.organization_id, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def active_principal(engine: AsyncEngine, user_id: UUID) -> Principal | None:
    """The user as a caller, with their current role; None once deleted or deactivated."""
    async with engine.connect() as conn:
        return await store.active_principal(conn, user_id)


async def login_facts(engine: AsyncEngine, email: str) -> LoginFacts | None:
    """Whose an email is and the password hash to check, if anyone's."""
    async with engine.connect() as conn:
        return await store.login_facts(conn, email)


async def record_login(
    engine: AsyncEngine,
    audit: AuditContext,
    facts: LoginFacts | None,
    email: str,
    reason: str | None,
) -> None:
    """Audit a login: `auth.login_succeeded` without `reason`, else `auth.login_failed`."""
    if reason is None and facts is not None:
        ctx = audit.acting(actor_id=facts.user_id, organization_id=facts.organization_id)
        record = audit_insert(
            ctx, "auth.login_succeeded", resource_type="user", resource_id=facts.user_id
        )
    else:
        ctx = audit.acting(
            actor_id=None, organization_id=None if facts is None else facts.organization_id
        )
        details = {"email": email, "reason": reason}
        if facts is not None:
            details["user_id"] = str(facts.user_id)
        record = audit_insert(ctx, "auth.login_failed", resource_type="user", details=details)
    async with engine.begin() as conn:
        await conn.execute(record)


async def own_organization(engine: AsyncEngine, principal: Principal) -> Organization:
    async with engine.connect() as conn:
        org = await store.get_organization(conn, principal.organization_id)
    if org is None:
        raise NotFound("the organization no longer exists")
    return org


async def me(engine: AsyncEngine, principal: Principal) -> tuple[User, Organization]:
    """The caller and their organization."""
    async with engine.connect() as conn:
        user = await store.get_user(conn, principal.organization_id, principal.user_id)
        org = await store.get_organization(conn, principal.organization_id)
    if user is None or org is None:
        raise NotFound("the caller no longer exists")
    return user, org


async def update_user(
    engine: AsyncEngine,
    acting: Acting,
    user_id: UUID,
    *,
    role: Role | None,
    is_active: bool | None,
) -> User:
    """An admin changes a user's role or deactivates them; the last active admin stays.

    A user who stops being an active admin loses the API keys they created (revoked, each
    audited): a key acts with its creator's authority, and a key of someone who may no
    longer act would keep their power and describe a user who cannot act.

    The organization's active admins are locked first, so two admins demoting each other
    at once end with one of them refused (`last_admin`), never with no admin.
    """
    require_admin(acting.principal)
    org = acting.principal.organization_id
    changes: dict[str, object] = {}
    if role is not None:
        changes["role"] = role
    if is_active is not None:
        changes["is_active"] = is_active
    async with engine.begin() as conn:
        admins = await store.lock_active_admins(conn, org)
        loses_admin = role is Role.MEMBER or is_active is False
        if loses_admin and admins == [user_id]:
            raise LastAdmin("the organization's last active admin cannot be demoted or deactivated")
        user = await store.update_user(conn, org, user_id, changes)
        if user is None:
            raise NotFound("no such user")
        await store.notify_credentials_changed(conn, "user", user.id)
        if not user.is_active or user.role is not Role.ADMIN:
            reason = "creator_deactivated" if not user.is_active else "creator_not_admin"
            await revoke_keys_of(conn, acting, user.id, reason)
        details = {key: getattr(value, "value", value) for key, value in changes.items()}
        await conn.execute(
            audit_insert(
                acting.audit,
                "user.updated",
                resource_type="user",
                resource_id=user.id,
                details=details,
            )
        )
    return user


async def change_password(
    engine: AsyncEngine,
    acting: Acting,
    *,
    current_password: str,
    new_password: str,
    checker: Callable[[str, bytes], Awaitable[bool]],
    hasher: Callable[[str], Awaitable[bytes]],
) -> None:
    """A user changes their own password; every token issued before stops working."""
    if acting.principal.key_id is not None:
        raise Forbidden("an API key has no password to change")
    user_id = acting.principal.user_id
    async with engine.connect() as conn:
        stored = await store.password_hash_of(conn, user_id)
    if stored is None or not await checker(current_password, stored):
        raise WrongPassword("the current password is wrong", field="current_password")
    new_hash = await hasher(new_password)
    async with engine.begin() as conn:
        await store.set_password(conn, user_id, new_hash)
        await store.notify_credentials_changed(conn, "user", user_id)
        await conn.execute(
            audit_insert(
                acting.audit, "auth.password_changed", resource_type="user", resource_id=user_id
            )
        )

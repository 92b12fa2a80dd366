"""Wallets: open, list, read, lock/unlock/close, and the admin's per-currency summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_core.accounts import Principal, require_admin
from ledger_core.acting import Acting
from ledger_core.errors import NotFound
from ledger_core.keyset import Keyset
from ledger_core.money import exponent
from ledger_core.persistence.accounts.store import get_organization, get_user
from ledger_core.persistence.audit.records import audit_insert
from ledger_core.persistence.wallets.store import (
    WalletFilters,
    get_wallet,
    has_pending_transfer,
    insert_wallet,
    list_wallets,
    set_overdraft_limit,
    set_wallet_metadata,
    set_wallet_status,
)
from ledger_core.persistence.wallets.summary import summarize
from ledger_core.summary import CurrencySummary
from ledger_core.wallets import (
    Wallet,
    WalletStatus,
    WalletType,
    check_may_act,
    check_status_change,
    parse_overdraft_limit,
    wallet_owner,
)


async def open_wallet(
    engine: AsyncEngine,
    acting: Acting,
    *,
    wallet_type: WalletType,
    currency: str | None,
    user_id: UUID | None,
    name: str | None,
    metadata: Mapping[str, str] | None = None,
) -> Wallet:
    """Open a wallet as the caller asks, after the rules in `ledger_core.wallets` agree."""
    who = acting.principal
    owner = wallet_owner(who, wallet_type, user_id)
    async with engine.begin() as conn:
        if owner is not None and owner != who.user_id:
            if await get_user(conn, who.organization_id, owner) is None:
                raise NotFound("no such user in this organization", field="user_id")
        if currency is None:
            org = await get_organization(conn, who.organization_id)
            if org is None:
                raise NotFound("the organization no longer exists")
            currency = org.default_currency
        exponent(currency)  # refuses codes that are not ISO 4217 money
        wallet = await insert_wallet(
            conn,
            organization_id=who.organization_id,
            user_id=owner,
            wallet_type=wallet_type,
            currency=currency,
            name=name,
            metadata=metadata,
        )
        await conn.execute(
            audit_insert(
                acting.audit,
                "wallet.created",
                resource_type="wallet",
                resource_id=wallet.id,
                details={
                    "type": wallet.type.value,
                    "currency": currency,
                    "user_id": None if owner is None else str(owner),
                },
            )
        )
    return wallet


async def visible_wallet(
    conn: AsyncConnection, principal: Principal, wallet_id: UUID, *, for_update: bool = False
) -> Wallet:
    """The wallet if the caller may act on it: 404 outside the tenant, 403 for a member's
    reach into a wallet that is not theirs."""
    wallet = await get_wallet(conn, principal.organization_id, wallet_id, for_update=for_update)
    if wallet is None:
        raise NotFound("no such wallet")
    check_may_act(principal, wallet)
    return wallet


async def read_wallet(engine: AsyncEngine, principal: Principal, wallet_id: UUID) -> Wallet:
    async with engine.connect() as conn:
        return await visible_wallet(conn, principal, wallet_id)


async def wallets_page(
    engine: AsyncEngine,
    principal: Principal,
    filters: WalletFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Wallet], Keyset | None]:
    """Wallets of the organization (an admin) or of the caller (a member), newest first."""
    member = None if principal.is_admin else principal.user_id
    async with engine.connect() as conn:
        return await list_wallets(
            conn, principal.organization_id, member, filters, after=after, limit=limit
        )


async def wallet_summary(engine: AsyncEngine, principal: Principal) -> list[CurrencySummary]:
    """Per-currency totals of the organization (admins only)."""
    require_admin(principal)
    async with engine.connect() as conn:
        return await summarize(conn, principal.organization_id)


async def update_wallet(
    engine: AsyncEngine,
    acting: Acting,
    wallet_id: UUID,
    *,
    status: WalletStatus | None,
    metadata: Mapping[str, str] | None = None,
    overdraft_limit: str | None = None,
) -> Wallet:
    """Replace a wallet's metadata, set its overdraft limit and/or move it to `status`,
    under its row lock, in one unit of work, with the event and audit records (admin).

    The lock orders this change against postings (which lock the same row), so a wallet
    never closes while a posting moves its balance. A transfer submitted after the check
    still meets the closed wallet in the worker, which fails it as `wallet_not_active`.
    """
    require_admin(acting.principal)
    async with engine.begin() as conn:
        wallet = await visible_wallet(conn, acting.principal, wallet_id, for_update=True)
        if metadata is not None and dict(metadata) != dict(wallet.metadata):
            wallet = await _set_metadata(conn, acting, wallet, metadata)
        if overdraft_limit is not None:
            wallet = await _set_limit(conn, acting, wallet, overdraft_limit)
        if status is not None:
            wallet = await _change_status(conn, acting, wallet, status)
    return wallet


async def _set_metadata(
    conn: AsyncConnection, acting: Acting, wallet: Wallet, metadata: Mapping[str, str]
) -> Wallet:
    changed = await set_wallet_metadata(conn, wallet, metadata)
    await _audit_change(
        conn, acting, wallet, "wallet.metadata_changed", {"metadata": dict(metadata)}
    )
    return changed


async def _audit_change(
    conn: AsyncConnection, acting: Acting, wallet: Wallet, action: str, details: dict[str, Any]
) -> None:
    """The audit record of one change to a wallet, in the change's transaction."""
    await conn.execute(
        audit_insert(
            acting.audit, action, resource_type="wallet", resource_id=wallet.id, details=details
        )
    )


async def _change_status(
    conn: AsyncConnection, acting: Acting, wallet: Wallet, target: WalletStatus
) -> Wallet:
    pending = target is WalletStatus.CLOSED and await has_pending_transfer(conn, wallet.id)
    if not check_status_change(wallet, target, has_pending=pending):
        return wallet
    changed = await set_wallet_status(conn, wallet, target)
    await _audit_change(
        conn,
        acting,
        wallet,
        "wallet.status_changed",
        {"from": wallet.status.value, "to": target.value},
    )
    return changed


async def _set_limit(conn: AsyncConnection, acting: Acting, wallet: Wallet, asked: str) -> Wallet:
    limit = parse_overdraft_limit(wallet, asked)
    if limit == wallet.overdraft_limit:
        return wallet
    changed = await set_overdraft_limit(conn, wallet, limit)
    await _audit_change(
        conn,
        acting,
        wallet,
        "wallet.overdraft_limit_changed",
        {"from": wallet.overdraft_limit, "to": limit},
    )
    return changed


__all__ = [
    "WalletFilters",
    "open_wallet",
    "read_wallet",
    "update_wallet",
    "visible_wallet",
    "wallet_summary",
    "wallets_page",
]

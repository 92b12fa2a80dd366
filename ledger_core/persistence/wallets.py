"""Storage of wallets and the operations on them (SQLAlchemy Core, async).

Each operation runs inside the caller's transaction: opening a wallet writes its audit
record, and a status change writes its outbox event and audit record in the same commit
as the change. Lookups are scoped by organization, so another tenant's wallet is simply
not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Numeric, Row, Select, cast, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal, require_admin
from ledger_core.errors import NotFound, SystemWalletExists
from ledger_core.money import exponent
from ledger_core.persistence.accounts import get_organization, get_user
from ledger_core.persistence.audit import AuditContext, audit_insert
from ledger_core.persistence.outbox import WALLET_STATUS_CHANGED, outbox_insert
from ledger_core.persistence.pages import Keyset, newest_first, read_page
from ledger_core.persistence.tables import transactions, wallets
from ledger_core.wallets import (
    Wallet,
    WalletStatus,
    WalletType,
    check_may_act,
    check_status_change,
    wallet_owner,
)

_pending_out = (
    select(func.coalesce(func.sum(transactions.c.amount), 0))
    .where(transactions.c.source_wallet_id == wallets.c.id, transactions.c.status == "PENDING")
    .correlate(wallets)
    .scalar_subquery()
)
"""Money promised away by PENDING outgoing transfers (served by a partial index)."""

_WALLET = select(*wallets.c, cast(_pending_out, Numeric).label("pending_out"))


@dataclass(frozen=True)
class WalletFilters:
    type: WalletType | None = None
    status: WalletStatus | None = None
    currency: str | None = None
    user_id: UUID | None = None


def _wallet(row: Row[*tuple[Any, ...]]) -> Wallet:
    return Wallet(
        id=row.id,
        organization_id=row.organization_id,
        user_id=row.user_id,
        type=WalletType(row.type),
        currency=row.currency,
        status=WalletStatus(row.status),
        balance=row.balance,
        pending_out=int(row.pending_out),
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def insert_wallet(
    conn: AsyncConnection,
    *,
    organization_id: UUID,
    user_id: UUID | None,
    wallet_type: WalletType,
    currency: str,
    name: str | None,
) -> Wallet:
    """Insert a wallet; a second SYSTEM wallet in one currency is `SystemWalletExists`."""
    try:
        row = (
            await conn.execute(
                wallets.insert()
                .values(
                    organization_id=organization_id,
                    user_id=user_id,
                    type=wallet_type.value,
                    currency=currency,
                    name=name,
                )
                .returning(*wallets.c, literal(0).label("pending_out"))
            )
        ).one()
    except IntegrityError as exc:
        if "uq_wallets_system_per_currency" in str(exc.orig):
            raise SystemWalletExists(
                f"the organization already has a SYSTEM wallet in {currency}", field="currency"
            ) from None
        raise
    return _wallet(row)


async def open_wallet(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    *,
    wallet_type: WalletType,
    currency: str | None,
    user_id: UUID | None,
    name: str | None,
) -> Wallet:
    """Open a wallet as `principal` asks, after the rules in `ledger_core.wallets` agree."""
    owner = wallet_owner(principal, wallet_type, user_id)
    org_id = principal.organization_id
    if owner is not None and owner != principal.user_id:
        if await get_user(conn, org_id, owner) is None:
            raise NotFound("no such user in this organization", field="user_id")
    if currency is None:
        org = await get_organization(conn, org_id)
        if org is None:
            raise NotFound("the organization no longer exists")
        currency = org.default_currency
    exponent(currency)  # refuses codes that are not ISO 4217 money
    wallet = await insert_wallet(
        conn,
        organization_id=org_id,
        user_id=owner,
        wallet_type=wallet_type,
        currency=currency,
        name=name,
    )
    await conn.execute(
        audit_insert(
            audit,
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


async def get_wallet(
    conn: AsyncConnection, organization_id: UUID, wallet_id: UUID, *, for_update: bool = False
) -> Wallet | None:
    stmt = _WALLET.where(wallets.c.id == wallet_id, wallets.c.organization_id == organization_id)
    if for_update:
        stmt = stmt.with_for_update(of=wallets)
    row = (await conn.execute(stmt)).one_or_none()
    return None if row is None else _wallet(row)


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


async def list_wallets(
    conn: AsyncConnection,
    principal: Principal,
    filters: WalletFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Wallet], Keyset | None]:
    """Wallets of the organization (an admin) or of the caller (a member), newest first."""
    stmt: Select[Any] = _WALLET.where(wallets.c.organization_id == principal.organization_id)
    if not principal.is_admin:
        stmt = stmt.where(wallets.c.user_id == principal.user_id)
    if filters.type is not None:
        stmt = stmt.where(wallets.c.type == filters.type.value)
    if filters.status is not None:
        stmt = stmt.where(wallets.c.status == filters.status.value)
    if filters.currency is not None:
        stmt = stmt.where(wallets.c.currency == filters.currency)
    if filters.user_id is not None:
        stmt = stmt.where(wallets.c.user_id == filters.user_id)
    stmt = newest_first(stmt, wallets.c.created_at, wallets.c.id, after, limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [_wallet(r) for r in page], next_key


async def change_wallet_status(
    conn: AsyncConnection,
    principal: Principal,
    audit: AuditContext,
    wallet_id: UUID,
    target: WalletStatus,
) -> Wallet:
    """Move a wallet to `target` under its row lock, with its event and audit record.

    The lock orders this change against postings (which lock the same row), so a wallet
    never closes while a posting moves its balance. A transfer submitted after the check
    still meets the closed wallet in the worker, which fails it as `wallet_not_active`.
    """
    require_admin(principal)
    wallet = await visible_wallet(conn, principal, wallet_id, for_update=True)
    pending = target is WalletStatus.CLOSED and await _has_pending_transfer(conn, wallet_id)
    if not check_status_change(wallet, target, has_pending=pending):
        return wallet
    row = (
        await conn.execute(
            wallets.update()
            .where(wallets.c.id == wallet_id)
            .values(status=target.value, updated_at=func.now())
            .returning(*wallets.c, literal(wallet.pending_out).label("pending_out"))
        )
    ).one()
    changed = _wallet(row)
    await conn.execute(
        outbox_insert(WALLET_STATUS_CHANGED, changed.organization_id, changed.as_json())
    )
    await conn.execute(
        audit_insert(
            audit,
            "wallet.status_changed",
            resource_type="wallet",
            resource_id=wallet_id,
            details={"from": wallet.status.value, "to": target.value},
        )
    )
    return changed


async def _has_pending_transfer(conn: AsyncConnection, wallet_id: UUID) -> bool:
    found = await conn.scalar(
        select(transactions.c.id)
        .where(
            transactions.c.status == "PENDING",
            or_(
                transactions.c.source_wallet_id == wallet_id,
                transactions.c.destination_wallet_id == wallet_id,
            ),
        )
        .limit(1)
    )
    return found is not None

"""Storage of wallets (SQLAlchemy Core, async), inside the caller's transaction.

A status change writes its outbox event in the same commit as the change. Lookups are
scoped by organization, so another tenant's wallet is simply not found. The decisions
are in `ledger_core.wallets`, their order in `ledger_core.services.wallets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnClause,
    Numeric,
    Row,
    Select,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.errors import SystemWalletExists
from ledger_core.keyset import Keyset
from ledger_core.persistence.events.outbox import WALLET_STATUS_CHANGED, outbox_insert
from ledger_core.persistence.pages import newest_first, read_page
from ledger_core.persistence.tables import TAGGED, transactions, wallets
from ledger_core.wallets import (
    Wallet,
    WalletStatus,
    WalletType,
)

_pending_single_out = (
    select(func.coalesce(func.sum(transactions.c.amount), 0))
    .where(
        transactions.c.source_wallet_id == wallets.c.id,
        transactions.c.status == "PENDING",
        transactions.c.kind != "MULTI",
    )
    .correlate(wallets)
    .scalar_subquery()
)
"""Money promised away by PENDING outgoing transfers (served by a partial index)."""

_pending_legs_out: ColumnClause[int] = literal_column(
    """(
    SELECT coalesce(sum(CAST(leg ->> 'amount' AS bigint)), 0)
    FROM transactions AS m CROSS JOIN jsonb_array_elements(m.postings) AS leg
    WHERE m.status = 'PENDING' AND m.kind = 'MULTI'
      AND m.postings @> jsonb_build_array(
          jsonb_build_object('source_wallet_id', CAST(wallets.id AS text)))
      AND leg ->> 'source_wallet_id' = CAST(wallets.id AS text))""",
    BigInteger,
)
"""What every leg of the PENDING multi-leg transactions takes from the wallet: the
containment finds them through `ix_transactions_pending_multi_postings`."""

_pending_out = _pending_single_out + _pending_legs_out

_WALLET = select(*wallets.c, cast(_pending_out, Numeric).label("pending_out"))


@dataclass(frozen=True)
class WalletFilters:
    type: WalletType | None = None
    status: WalletStatus | None = None
    currency: str | None = None
    user_id: UUID | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Wallets whose metadata holds every one of these pairs (`@>`, a GIN index)."""


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
        held=row.held,
        overdraft_limit=row.overdraft_limit,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        metadata=row.metadata,
    )


async def insert_wallet(
    conn: AsyncConnection,
    *,
    organization_id: UUID,
    user_id: UUID | None,
    wallet_type: WalletType,
    currency: str,
    name: str | None,
    metadata: Mapping[str, str] | None = None,
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
                    metadata=dict(metadata or {}),
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


async def get_wallet(
    conn: AsyncConnection, organization_id: UUID, wallet_id: UUID, *, for_update: bool = False
) -> Wallet | None:
    stmt = _WALLET.where(wallets.c.id == wallet_id, wallets.c.organization_id == organization_id)
    if for_update:
        stmt = stmt.with_for_update(of=wallets)
    row = (await conn.execute(stmt)).one_or_none()
    return None if row is None else _wallet(row)


async def list_wallets(
    conn: AsyncConnection,
    organization_id: UUID,
    member_id: UUID | None,
    filters: WalletFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> tuple[list[Wallet], Keyset | None]:
    """Wallets of the organization (of one user with `member_id`), newest first."""
    stmt = wallets_query(organization_id, member_id, filters, after=after, limit=limit)
    page, next_key = await read_page(conn, stmt, limit)
    return [_wallet(r) for r in page], next_key


def wallets_query(
    organization_id: UUID,
    member_id: UUID | None,
    filters: WalletFilters,
    *,
    after: Keyset | None,
    limit: int,
) -> Select[Any]:
    """The page query of `list_wallets`."""
    stmt: Select[Any] = _WALLET.where(wallets.c.organization_id == organization_id)
    if member_id is not None:
        stmt = stmt.where(wallets.c.user_id == member_id)
    if filters.type is not None:
        stmt = stmt.where(wallets.c.type == filters.type.value)
    if filters.status is not None:
        stmt = stmt.where(wallets.c.status == filters.status.value)
    if filters.currency is not None:
        stmt = stmt.where(wallets.c.currency == filters.currency)
    if filters.user_id is not None:
        stmt = stmt.where(wallets.c.user_id == filters.user_id)
    if filters.metadata:
        stmt = stmt.where(wallets.c.id.in_(select(_tagged(filters.metadata).c.id)))
    return newest_first(stmt, wallets.c.created_at, wallets.c.id, after, limit)


def _tagged(metadata: Mapping[str, str]) -> CTE:
    """Wallets holding every pair, read through the GIN index first (materialized), so a
    rare tag never walks the organization's wallets in time order looking for it."""
    tagged = select(wallets.c.id).where(wallets.c.metadata.contains(dict(metadata)), text(TAGGED))
    return tagged.cte("tagged").prefix_with("MATERIALIZED")


async def set_wallet_status(conn: AsyncConnection, wallet: Wallet, target: WalletStatus) -> Wallet:
    """Store a wallet's new status with its `wallet.status_changed` event."""
    row = (
        await conn.execute(
            wallets.update()
            .where(wallets.c.id == wallet.id)
            .values(status=target.value, updated_at=func.now())
            .returning(*wallets.c, literal(wallet.pending_out).label("pending_out"))
        )
    ).one()
    changed = _wallet(row)
    await conn.execute(
        outbox_insert(WALLET_STATUS_CHANGED, changed.organization_id, changed.as_json())
    )
    return changed


async def set_overdraft_limit(conn: AsyncConnection, wallet: Wallet, limit: int) -> Wallet:
    """Store a wallet's overdraft limit (the caller holds the wallet's row lock)."""
    row = (
        await conn.execute(
            wallets.update()
            .where(wallets.c.id == wallet.id)
            .values(overdraft_limit=limit, updated_at=func.now())
            .returning(*wallets.c, literal(wallet.pending_out).label("pending_out"))
        )
    ).one()
    return _wallet(row)


async def set_wallet_metadata(
    conn: AsyncConnection, wallet: Wallet, metadata: Mapping[str, str]
) -> Wallet:
    """Replace a wallet's metadata (the caller holds the wallet's row lock)."""
    row = (
        await conn.execute(
            wallets.update()
            .where(wallets.c.id == wallet.id)
            .values(metadata=dict(metadata), updated_at=func.now())
            .returning(*wallets.c, literal(wallet.pending_out).label("pending_out"))
        )
    ).one()
    return _wallet(row)


async def has_pending_transfer(conn: AsyncConnection, wallet_id: UUID) -> bool:
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

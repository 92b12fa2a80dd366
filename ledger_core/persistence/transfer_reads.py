"""Reading transfers and ledger entries as one organization (and one member) may see them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.accounts import Principal
from ledger_core.errors import Forbidden, NotFound
from ledger_core.persistence.arrays import pg_array

_WITH_USERS = """
    SELECT t.*, s.user_id AS source_user_id, d.user_id AS destination_user_id
    FROM transactions t
    JOIN wallets s ON s.id = t.source_wallet_id
    JOIN wallets d ON d.id = t.destination_wallet_id
"""
"""A transaction with the owners of its two wallets, which decide what a member may see."""

GET_TRANSACTION = text(
    _WITH_USERS
    + "WHERE t.id = :id AND (t.organization_id = :org OR t.destination_organization_id = :org)"
)

GET_TRANSACTIONS = text(_WITH_USERS + "WHERE t.id = ANY(CAST(:ids AS uuid[]))")


async def get_transaction(
    conn: AsyncConnection, actor: Principal, transaction_id: UUID
) -> dict[str, Any]:
    """A transaction the actor's organization is party to; 404 otherwise, as if it did not exist."""
    row = (
        await conn.execute(GET_TRANSACTION, {"id": transaction_id, "org": actor.organization_id})
    ).first()
    return visible_to(None if row is None else dict(row._mapping), actor)


async def get_transactions_unchecked(
    conn: AsyncConnection, ids: Sequence[UUID]
) -> dict[UUID, dict[str, Any]]:
    """Many transactions by id, for any reader: pass each through `visible_to` before use."""
    rows = await conn.execute(GET_TRANSACTIONS, {"ids": pg_array(ids)})
    return {row.id: dict(row._mapping) for row in rows}


def visible_to(row: dict[str, Any] | None, actor: Principal) -> dict[str, Any]:
    """The row if the actor may read it: 404 unless their organization is party to it (as if
    it did not exist), 403 for a member whose wallets it does not touch."""
    if row is None or actor.organization_id not in (
        row["organization_id"],
        row["destination_organization_id"],
    ):
        raise NotFound("transaction not found")
    if not actor.is_admin and actor.user_id not in _member_side(row, actor):
        raise Forbidden("this transaction does not involve your wallets")
    return row


def _member_side(row: Mapping[str, Any], actor: Principal) -> set[UUID | None]:
    users = set()
    if row["organization_id"] == actor.organization_id:
        users.add(row["source_user_id"])
    if row["destination_organization_id"] == actor.organization_id:
        users.add(row["destination_user_id"])
    return users


@dataclass(frozen=True)
class TransactionFilter:
    status: str | None = None
    wallet_id: UUID | None = None
    kind: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    after: tuple[datetime, UUID] | None = None
    """Keyset cursor: only rows strictly older than (created_at, id)."""


def _conditions(f: TransactionFilter, params: dict[str, Any]) -> list[str]:
    conds = []
    if f.status:
        conds.append("t.status = :status")
        params["status"] = f.status
    if f.kind:
        conds.append("t.kind = :kind")
        params["kind"] = f.kind
    if f.wallet_id:
        conds.append("(t.source_wallet_id = :wallet_id OR t.destination_wallet_id = :wallet_id)")
        params["wallet_id"] = f.wallet_id
    if f.created_from:
        conds.append("t.created_at >= :created_from")
        params["created_from"] = f.created_from
    if f.created_to:
        conds.append("t.created_at < :created_to")
        params["created_to"] = f.created_to
    if f.after:
        conds.append("(t.created_at, t.id) < (:after_at, :after_id)")
        params["after_at"], params["after_id"] = f.after
    return conds


async def list_transactions(
    conn: AsyncConnection, actor: Principal, f: TransactionFilter, limit: int
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated. Two index-ordered scans merged: sent and received."""
    params: dict[str, Any] = {"org": actor.organization_id, "limit": limit}
    conds = _conditions(f, params)
    if not actor.is_admin:
        conds.append(
            "(t.source_wallet_id IN (SELECT id FROM wallets WHERE user_id = :me)"
            " OR t.destination_wallet_id IN (SELECT id FROM wallets WHERE user_id = :me))"
        )
        params["me"] = actor.user_id
    extra = "".join(f" AND {c}" for c in conds)
    sql = f"""
        (SELECT t.* FROM transactions t WHERE t.organization_id = :org{extra}
         ORDER BY t.created_at DESC, t.id DESC LIMIT :limit)
        UNION ALL
        (SELECT t.* FROM transactions t
         WHERE t.destination_organization_id = :org AND t.kind = 'CROSS_ORG'
           AND t.organization_id <> :org{extra}
         ORDER BY t.created_at DESC, t.id DESC LIMIT :limit)
        ORDER BY created_at DESC, id DESC LIMIT :limit
    """
    rows = await conn.execute(text(sql), params)
    return [dict(r._mapping) for r in rows]


ENTRIES_OF_TRANSACTION = text("""
    SELECT id, transaction_id, wallet_id, direction, amount, currency, balance_after, created_at
    FROM ledger_entries WHERE transaction_id = :id AND organization_id = :org ORDER BY id
""")


async def transaction_entries(
    conn: AsyncConnection, actor: Principal, transaction_id: UUID
) -> list[dict[str, Any]]:
    """The entries of a transaction in the actor's own books."""
    await get_transaction(conn, actor, transaction_id)
    rows = await conn.execute(
        ENTRIES_OF_TRANSACTION, {"id": transaction_id, "org": actor.organization_id}
    )
    return [dict(r._mapping) for r in rows]


async def wallet_entries(
    conn: AsyncConnection,
    wallet_id: UUID,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A wallet's statement, oldest first; the caller has already checked it may see the wallet."""
    conds = ["wallet_id = :wallet_id"]
    params: dict[str, Any] = {"wallet_id": wallet_id, "limit": limit}
    if after_id is not None:
        conds.append("id > :after_id")
        params["after_id"] = after_id
    if created_from is not None:
        conds.append("created_at >= :created_from")
        params["created_from"] = created_from
    if created_to is not None:
        conds.append("created_at < :created_to")
        params["created_to"] = created_to
    sql = f"""
        SELECT id, transaction_id, settlement_id, wallet_id, direction, amount, currency,
               balance_after, created_at
        FROM ledger_entries WHERE {" AND ".join(conds)} ORDER BY id LIMIT :limit
    """
    return [dict(r._mapping) for r in await conn.execute(text(sql), params)]

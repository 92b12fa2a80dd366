"""A wallet's past: its balance and holds at an instant and the totals of a statement's range.

Both read `ix_ledger_entries_wallet_history` (`wallet_id, created_at DESC, id DESC`): the
balance at an instant is the running balance (`balance_after`) of the wallet's last
entry at or before it, one index lookup rather than a sum over its history. What holds
reserved is the same lookup in `wallet_held_changes`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.keyset import Keyset
from ledger_core.persistence.pages import stream_chunks
from ledger_core.persistence.transfers.reads import TransferFilter, list_sql

POSITION_AT = text("""
    SELECT (SELECT balance_after FROM ledger_entries
            WHERE wallet_id = :wallet_id AND created_at <= :at
            ORDER BY created_at DESC, id DESC LIMIT 1) AS balance,
           (SELECT held_after FROM wallet_held_changes
            WHERE wallet_id = :wallet_id AND created_at <= :at
            ORDER BY created_at DESC, id DESC LIMIT 1) AS held
""")
"""The balance and the held amount as of `at`, read in one statement (one snapshot)."""

BALANCE_BEFORE = text("""
    SELECT balance_after FROM ledger_entries
    WHERE wallet_id = :wallet_id AND created_at < :at
    ORDER BY created_at DESC, id DESC LIMIT 1
""")

_STATEMENT = """
    SELECT id, transaction_id, settlement_id, wallet_id, direction, amount, currency,
           balance_after, created_at
    FROM ledger_entries
    WHERE wallet_id = :wallet_id AND created_at >= :start AND created_at < :end
      AND (created_at, id) > (:after_at, :after_id)
    ORDER BY created_at, id
"""
STATEMENT_PAGE = text(_STATEMENT + " LIMIT :limit")
STATEMENT_ALL = text(_STATEMENT)

RANGE_TOTALS = text("""
    SELECT coalesce(sum(amount) FILTER (WHERE direction = 'DEBIT'), 0) AS debits,
           coalesce(sum(amount) FILTER (WHERE direction = 'CREDIT'), 0) AS credits
    FROM ledger_entries
    WHERE wallet_id = :wallet_id AND created_at >= :start AND created_at < :end
""")


@dataclass(frozen=True)
class RangeTotals:
    """Opening balance (before `start`), closing balance (before `end`) and the
    debits and credits in between, in minor units."""

    opening: int
    closing: int
    debits: int
    credits: int


async def statement_page(
    conn: AsyncConnection,
    wallet_id: UUID,
    start: datetime,
    end: datetime,
    *,
    after: Keyset | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` entries created in `[start, end)`, oldest first, after `after`: a range
    of `ix_ledger_entries_wallet_history`, however long the wallet's history before it."""
    rows = await conn.execute(
        STATEMENT_PAGE, _statement_params(wallet_id, start, end, after) | {"limit": limit}
    )
    return [dict(r._mapping) for r in rows]


async def stream_statement(
    conn: AsyncConnection, wallet_id: UUID, start: datetime, end: datetime, chunk: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every entry created in `[start, end)`, oldest first, `chunk` at a time."""
    params = _statement_params(wallet_id, start, end, None)
    async for rows in stream_chunks(conn, STATEMENT_ALL, params, chunk):
        yield rows


def _statement_params(
    wallet_id: UUID, start: datetime, end: datetime, after: Keyset | None
) -> dict[str, Any]:
    return {
        "wallet_id": wallet_id,
        "start": start,
        "end": end,
        "after_at": start if after is None else after.created_at,
        "after_id": 0 if after is None else after.id,
    }


@dataclass(frozen=True)
class Position:
    """A wallet's posted balance and what its open holds reserved, in minor units."""

    balance: int
    held: int


async def position_at(conn: AsyncConnection, wallet_id: UUID, at: datetime) -> Position:
    """Balance and held as of `at`, everything written at exactly `at` included; both 0
    before the wallet's first entry and first hold."""
    row = (await conn.execute(POSITION_AT, {"wallet_id": wallet_id, "at": at})).one()
    return Position(balance=int(row.balance or 0), held=int(row.held or 0))


async def balance_before(conn: AsyncConnection, wallet_id: UUID, at: datetime) -> int:
    """The posted balance just before `at`, entries at exactly `at` excluded."""
    found = await conn.scalar(BALANCE_BEFORE, {"wallet_id": wallet_id, "at": at})
    return 0 if found is None else int(found)


async def range_totals(
    conn: AsyncConnection, wallet_id: UUID, start: datetime, end: datetime
) -> RangeTotals:
    """What a statement of entries created in `[start, end)` sums to."""
    sums = (
        await conn.execute(RANGE_TOTALS, {"wallet_id": wallet_id, "start": start, "end": end})
    ).one()
    return RangeTotals(
        opening=await balance_before(conn, wallet_id, start),
        closing=await balance_before(conn, wallet_id, end),
        debits=int(sums.debits),
        credits=int(sums.credits),
    )


MIDDLE_INSTANT = text("""
    SELECT coalesce(min(created_at) + (max(created_at) - min(created_at)) / 2, now())
    FROM ledger_entries WHERE wallet_id = :wallet_id
""")


def time_history_reads(
    conn: Connection, organization_id: UUID, wallet_id: UUID, tries: int = 5
) -> dict[str, float]:
    """Best-of-`tries` milliseconds of a balance (and held) at the middle of the wallet's
    history, as `GET /wallets/{id}/balance?at=` reads it, and
    of a page of the organization's transfers filtered by a tag none carries (for `bench`)."""
    at = conn.execute(MIDDLE_INSTANT, {"wallet_id": wallet_id}).scalar_one()
    tagged, params = list_sql(
        organization_id, None, TransferFilter(metadata={"bench": "no-such-tag"}), 51
    )
    reads = {
        "balance_at": (POSITION_AT, {"wallet_id": wallet_id, "at": at}),
        "metadata_list": (text(tagged), params),
    }
    timings: dict[str, float] = {}
    for name, (stmt, values) in reads.items():
        best = float("inf")
        for _ in range(tries):
            started = time.perf_counter()
            conn.execute(stmt, values).all()
            best = min(best, time.perf_counter() - started)
        timings[name] = round(best * 1000, 3)
    return timings

"""A wallet's past: its balance at an instant and the totals of a statement's range.

Both read `ix_ledger_entries_wallet_history` (`wallet_id, created_at DESC, id DESC`): the
balance at an instant is the running balance (`balance_after`) of the wallet's last
entry at or before it, one index lookup rather than a sum over its history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_core.persistence.transfers.reads import TransferFilter, list_sql

BALANCE_AT = text("""
    SELECT balance_after FROM ledger_entries
    WHERE wallet_id = :wallet_id AND created_at <= :at
    ORDER BY created_at DESC, id DESC LIMIT 1
""")

BALANCE_BEFORE = text("""
    SELECT balance_after FROM ledger_entries
    WHERE wallet_id = :wallet_id AND created_at < :at
    ORDER BY created_at DESC, id DESC LIMIT 1
""")

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


async def balance_at(conn: AsyncConnection, wallet_id: UUID, at: datetime) -> int:
    """The posted balance as of `at`, entries at exactly `at` included; 0 before the first."""
    found = await conn.scalar(BALANCE_AT, {"wallet_id": wallet_id, "at": at})
    return 0 if found is None else int(found)


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
    """Best-of-`tries` milliseconds of a balance at the middle of the wallet's history and
    of a page of the organization's transfers filtered by a tag none carries (for `bench`)."""
    at = conn.execute(MIDDLE_INSTANT, {"wallet_id": wallet_id}).scalar_one()
    tagged, params = list_sql(
        organization_id, None, TransferFilter(metadata={"bench": "no-such-tag"}), 51
    )
    reads = {
        "balance_at": (BALANCE_AT, {"wallet_id": wallet_id, "at": at}),
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
